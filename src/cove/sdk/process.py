"""`sandbox.process`: exec, code_run, sessions and their logs (wire page §4);
the PTY methods are mixed in from `pty.py`.

`ProcessCalls` builds every request once; `Process` (sync) and `AsyncProcess`
only send them, so the two faces cannot drift in what they put on the wire.
Log following is a WebSocket; Daytona makes its `*_async` log methods
coroutines even on the sync client, so both faces have them as coroutines,
and the sync face adds a blocking `follow_session_command_logs`.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from cove.sdk._base import Toolbox
from cove.sdk._process_calls import ProcessCalls
from cove.sdk._pty import PtyCalls
from cove.sdk._streams import LogDemux, log_close_error
from cove.sdk._transport import AsyncTransport, SyncTransport, open_async_websocket
from cove.sdk.models import (
    CodeRunParams,
    Command,
    ExecuteResponse,
    Session,
    SessionCommandLogsResponse,
    SessionExecuteRequest,
    SessionExecuteResponse,
)
from cove.sdk.pty import AsyncPtyMethods, PtyMethods

LogCallback = Callable[[str], Any]


def _deliver(demux_out: list[tuple[str, str]], out: LogCallback, err: LogCallback) -> list[Any]:
    return [(out if ch == "stdout" else err)(text) for ch, text in demux_out]


async def _maybe_await(results: list[Any]) -> None:
    for r in results:
        if inspect.isawaitable(r):
            await r


async def follow_logs_async(
    transport_kwargs: dict[str, Any], url: str, what: str, on_stdout: LogCallback,
    on_stderr: LogCallback, offset: int = 0,
) -> int:  # fmt: skip
    """Stream a followed log into (sync or async) callbacks until the server closes it.

    Returns the byte offset reached in the combined output (for `offset=` on a resume).
    """
    demux = LogDemux(offset)
    ws = await open_async_websocket(url, what, transport_kwargs)
    async with ws:
        with contextlib.suppress(ConnectionClosed):  # the close code is judged below
            async for frame in ws:
                await _maybe_await(_deliver(demux.feed(frame), on_stdout, on_stderr))
    await _maybe_await(_deliver(demux.flush(), on_stdout, on_stderr))
    err = log_close_error(ws.close_code, ws.close_reason or "", what)
    if err is not None:
        raise err
    return demux.position


class _Shared:
    calls: ProcessCalls

    def _ws_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    async def get_session_command_logs_async(
        self, session_id: str, command_id: str, on_stdout: LogCallback, on_stderr: LogCallback,
        offset: int = 0,
    ) -> int:  # fmt: skip
        """Stream a command's output from byte `offset` until it exits; returns the end offset."""
        url = self.calls.logs_url(session_id, command_id, offset)
        what = "follow command logs"
        return await follow_logs_async(self._ws_kwargs(), url, what, on_stdout, on_stderr, offset)

    async def get_entrypoint_logs_async(
        self, on_stdout: LogCallback, on_stderr: LogCallback, offset: int = 0
    ) -> int:
        url = self.calls.logs_url(None, None, offset)
        what = "follow entrypoint logs"
        return await follow_logs_async(self._ws_kwargs(), url, what, on_stdout, on_stderr, offset)


class Process(_Shared, PtyMethods):
    def __init__(self, transport: SyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = ProcessCalls(toolbox)
        self.pty_calls = PtyCalls(toolbox)

    def _ws_kwargs(self) -> dict[str, Any]:
        return self._t.ws_kwargs(None)

    def exec(
        self, command: str, cwd: str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecuteResponse:  # fmt: skip
        """Run a shell command to completion; a timeout raises `CommandTimeout` (`.response`)."""
        return self._t.call(self.calls.exec(command, cwd, env, timeout))

    def code_run(
        self, code: str, params: CodeRunParams | None = None, timeout: float | None = None,
        language: str | None = None,
    ) -> ExecuteResponse:  # fmt: skip
        """Run code in a fresh interpreter (the sandbox's language unless `language` is given)."""
        return self._t.call(self.calls.code_run(code, params, timeout, language))

    def create_session(self, session_id: str) -> None:
        self._t.call(self.calls.create_session(session_id))

    def get_session(self, session_id: str) -> Session:
        return self._t.call(self.calls.get_session(session_id))

    def list_sessions(self) -> list[Session]:
        return self._t.call(self.calls.list_sessions())

    def delete_session(self, session_id: str) -> None:
        self._t.call(self.calls.delete_session(session_id))

    def execute_session_command(
        self, session_id: str, req: SessionExecuteRequest, timeout: float | None = None
    ) -> SessionExecuteResponse:
        return self._t.call(self.calls.execute_session_command(session_id, req, timeout))

    def get_session_command(self, session_id: str, command_id: str) -> Command:
        return self._t.call(self.calls.get_session_command(session_id, command_id))

    def get_session_command_logs(
        self, session_id: str, command_id: str
    ) -> SessionCommandLogsResponse:
        return self._t.call(self.calls.get_session_command_logs(session_id, command_id))

    def send_session_command_input(
        self, session_id: str, command_id: str, data: str, *, raw: bool = False
    ) -> None:
        """Write `data` to the command's stdin, with a newline added when it has
        none (as Daytona does); `raw=True` sends it unchanged (keystrokes)."""
        self._t.call(self.calls.send_session_command_input(session_id, command_id, data, raw))

    def close_session_command_input(self, session_id: str, command_id: str) -> Command:
        """Close the command's stdin (it reads EOF after the input already sent)."""
        return self._t.call(self.calls.close_session_command_input(session_id, command_id))

    def kill_session_command(
        self, session_id: str, command_id: str, signal: str | int | None = None
    ) -> Command:
        """Kill the command's whole process tree (or send it `signal`, e.g. "INT")."""
        return self._t.call(self.calls.kill_session_command(session_id, command_id, signal))

    def get_entrypoint_session(self) -> Session:
        return self._t.call(self.calls.get_entrypoint_session())

    def get_entrypoint_logs(self) -> SessionCommandLogsResponse:
        return self._t.call(self.calls.get_entrypoint_logs())

    def follow_session_command_logs(
        self, session_id: str | None, command_id: str | None, on_stdout: LogCallback,
        on_stderr: LogCallback, offset: int = 0,
    ) -> int:  # fmt: skip
        """Blocking log follow (entrypoint when `session_id` is None) from byte `offset`.

        Returns the offset reached, to resume from after a disconnect.
        """
        demux = LogDemux(offset)
        what = "follow command logs"
        url = self.calls.logs_url(session_id, command_id, offset)
        # ConnectionClosed is suppressed: the close code is judged below.
        with self._t.websocket(url, what) as ws, contextlib.suppress(ConnectionClosed):
            for frame in ws:
                _deliver(demux.feed(frame), on_stdout, on_stderr)
        _deliver(demux.flush(), on_stdout, on_stderr)
        err = log_close_error(ws.close_code, ws.close_reason or "", what)
        if err is not None:
            raise err
        return demux.position


class AsyncProcess(_Shared, AsyncPtyMethods):
    def __init__(self, transport: AsyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = ProcessCalls(toolbox)
        self.pty_calls = PtyCalls(toolbox)

    def _ws_kwargs(self) -> dict[str, Any]:
        return self._t.ws_kwargs(None)

    async def exec(
        self, command: str, cwd: str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecuteResponse:  # fmt: skip
        """Run a shell command to completion; a timeout raises `CommandTimeout` (`.response`)."""
        return await self._t.call(self.calls.exec(command, cwd, env, timeout))

    async def code_run(
        self, code: str, params: CodeRunParams | None = None, timeout: float | None = None,
        language: str | None = None,
    ) -> ExecuteResponse:  # fmt: skip
        """Run code in a fresh interpreter (the sandbox's language unless `language` is given)."""
        return await self._t.call(self.calls.code_run(code, params, timeout, language))

    async def create_session(self, session_id: str) -> None:
        await self._t.call(self.calls.create_session(session_id))

    async def get_session(self, session_id: str) -> Session:
        return await self._t.call(self.calls.get_session(session_id))

    async def list_sessions(self) -> list[Session]:
        return await self._t.call(self.calls.list_sessions())

    async def delete_session(self, session_id: str) -> None:
        await self._t.call(self.calls.delete_session(session_id))

    async def execute_session_command(
        self, session_id: str, req: SessionExecuteRequest, timeout: float | None = None
    ) -> SessionExecuteResponse:
        return await self._t.call(self.calls.execute_session_command(session_id, req, timeout))

    async def get_session_command(self, session_id: str, command_id: str) -> Command:
        return await self._t.call(self.calls.get_session_command(session_id, command_id))

    async def get_session_command_logs(
        self, session_id: str, command_id: str
    ) -> SessionCommandLogsResponse:
        return await self._t.call(self.calls.get_session_command_logs(session_id, command_id))

    async def send_session_command_input(
        self, session_id: str, command_id: str, data: str, *, raw: bool = False
    ) -> None:
        """Write `data` to the command's stdin, with a newline added when it has
        none (as Daytona does); `raw=True` sends it unchanged (keystrokes)."""
        await self._t.call(self.calls.send_session_command_input(session_id, command_id, data, raw))

    async def close_session_command_input(self, session_id: str, command_id: str) -> Command:
        """Close the command's stdin (it reads EOF after the input already sent)."""
        return await self._t.call(self.calls.close_session_command_input(session_id, command_id))

    async def kill_session_command(
        self, session_id: str, command_id: str, signal: str | int | None = None
    ) -> Command:
        """Kill the command's whole process tree (or send it `signal`, e.g. "INT")."""
        return await self._t.call(self.calls.kill_session_command(session_id, command_id, signal))

    async def get_entrypoint_session(self) -> Session:
        return await self._t.call(self.calls.get_entrypoint_session())

    async def get_entrypoint_logs(self) -> SessionCommandLogsResponse:
        return await self._t.call(self.calls.get_entrypoint_logs())

    async def follow_session_command_logs(
        self, session_id: str | None, command_id: str | None, on_stdout: LogCallback,
        on_stderr: LogCallback, offset: int = 0,
    ) -> int:  # fmt: skip
        """Log follow (entrypoint when `session_id` is None) from byte `offset`; returns the end."""
        url = self.calls.logs_url(session_id, command_id, offset)
        what = "follow command logs"
        return await follow_logs_async(self._ws_kwargs(), url, what, on_stdout, on_stderr, offset)


__all__ = ["AsyncProcess", "Process", "ProcessCalls"]
