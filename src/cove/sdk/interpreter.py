"""`sandbox.code_interpreter`: stateful Python contexts (wire page §5).

`run_code` sends one JSON frame on a WebSocket and reads JSON frames back
(`InterpreterRun` parses them, shared by both faces). Close 1000 ends the run;
4008 means its timeout interrupted it, and raises `CodeTimeout` with the
output so far (the context and its variables survive).
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from cove.sdk._base import Call, Toolbox, seg, wire_body
from cove.sdk._streams import InterpreterRun
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.sdk.models import ExecutionResult, InterpreterContext
from cove.wire.protocol import DEFAULT_CONTEXT_ID, ContextList, CreateContextRequest, RunCodeRequest

Callback = Callable[[Any], Any]
CONTEXTS = "/process/interpreter/context"


def _context_id(context: InterpreterContext | str | None) -> str | None:
    if context is None:
        return None
    return context if isinstance(context, str) else context.id


class InterpreterCalls:
    def __init__(self, toolbox: Toolbox) -> None:
        self.tb = toolbox

    def create_context(self, cwd: str | None, language: str | None) -> Call[InterpreterContext]:
        body = wire_body(CreateContextRequest(cwd, language))
        return self.tb.call("POST", CONTEXTS, "create context", InterpreterContext.from_wire, body)

    def list_contexts(self) -> Call[list[InterpreterContext]]:
        def parse(data: Any) -> list[InterpreterContext]:
            return ContextList.from_wire(data).contexts

        return self.tb.call("GET", CONTEXTS, "list contexts", parse)

    def delete_context(self, context: InterpreterContext | str) -> Call[None]:
        path = f"{CONTEXTS}/{seg(str(_context_id(context)))}"
        return self.tb.void("DELETE", path, "delete context")

    def interrupt(self, context: InterpreterContext | str | None) -> Call[None]:
        cid = _context_id(context) or DEFAULT_CONTEXT_ID
        return self.tb.void("POST", f"{CONTEXTS}/{seg(cid)}/interrupt", "interrupt")

    def execute_url(self) -> str:
        return self.tb.url("/process/interpreter/execute")

    @staticmethod
    def first_frame(
        code: str,
        context: InterpreterContext | str | None,
        envs: dict[str, str] | None,
        timeout: float | None,
    ) -> str:
        body = RunCodeRequest(code, _context_id(context), dict(envs or {}), timeout)
        return json.dumps(wire_body(body))


def _callbacks(
    on_stdout: Callback | None,
    on_stderr: Callback | None,
    on_error: Callback | None,
    on_result: Callback | None,
) -> dict[str, Callback | None]:
    return {"stdout": on_stdout, "stderr": on_stderr, "error": on_error, "result": on_result}


def _dispatch(event: tuple[str, Any] | None, callbacks: dict[str, Callback | None]) -> Any:
    if event is None:
        return None
    callback = callbacks.get(event[0])
    return callback(event[1]) if callback is not None else None


class CodeInterpreter:
    def __init__(self, transport: SyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = InterpreterCalls(toolbox)

    def run_code(
        self, code: str, context: InterpreterContext | str | None = None,
        on_stdout: Callback | None = None, on_stderr: Callback | None = None,
        on_error: Callback | None = None, envs: dict[str, str] | None = None,
        timeout: float | None = None, on_result: Callback | None = None,
    ) -> ExecutionResult:  # fmt: skip
        """Run Python in a persistent context (the default one when `context` is None).

        Callbacks get `OutputMessage`s (stdout, stderr), the `ExecutionError`
        and each `RichResult`. `timeout` seconds interrupt the run
        (`CodeTimeout`); `interrupt()` from another thread does so at once.
        """
        run = InterpreterRun()
        callbacks = _callbacks(on_stdout, on_stderr, on_error, on_result)
        with self._t.websocket(self.calls.execute_url(), "run_code") as ws:
            ws.send(self.calls.first_frame(code, context, envs, timeout))
            with contextlib.suppress(ConnectionClosed):  # the close code is judged below
                for frame in ws:
                    _dispatch(run.feed(frame), callbacks)
        return run.outcome(ws.close_code, ws.close_reason or "")

    def create_context(
        self, cwd: str | None = None, language: str | None = None
    ) -> InterpreterContext:
        return self._t.call(self.calls.create_context(cwd, language))

    def list_contexts(self) -> list[InterpreterContext]:
        return self._t.call(self.calls.list_contexts())

    def delete_context(self, context: InterpreterContext | str) -> None:
        self._t.call(self.calls.delete_context(context))

    def interrupt(self, context: InterpreterContext | str | None = None) -> None:
        """Interrupt the code running in `context` (KeyboardInterrupt; state is kept)."""
        self._t.call(self.calls.interrupt(context))


class AsyncCodeInterpreter:
    def __init__(self, transport: AsyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = InterpreterCalls(toolbox)

    async def run_code(
        self, code: str, context: InterpreterContext | str | None = None,
        on_stdout: Callback | None = None, on_stderr: Callback | None = None,
        on_error: Callback | None = None, envs: dict[str, str] | None = None,
        timeout: float | None = None, on_result: Callback | None = None,
    ) -> ExecutionResult:  # fmt: skip
        """Run Python in a persistent context; callbacks may be sync or async."""
        run = InterpreterRun()
        callbacks = _callbacks(on_stdout, on_stderr, on_error, on_result)
        ws = await self._t.websocket(self.calls.execute_url(), "run_code")
        async with ws:
            await ws.send(self.calls.first_frame(code, context, envs, timeout))
            with contextlib.suppress(ConnectionClosed):  # the close code is judged below
                async for frame in ws:
                    pending = _dispatch(run.feed(frame), callbacks)
                    if inspect.isawaitable(pending):
                        await pending
        return run.outcome(ws.close_code, ws.close_reason or "")

    async def create_context(
        self, cwd: str | None = None, language: str | None = None
    ) -> InterpreterContext:
        return await self._t.call(self.calls.create_context(cwd, language))

    async def list_contexts(self) -> list[InterpreterContext]:
        return await self._t.call(self.calls.list_contexts())

    async def delete_context(self, context: InterpreterContext | str) -> None:
        await self._t.call(self.calls.delete_context(context))

    async def interrupt(self, context: InterpreterContext | str | None = None) -> None:
        """Interrupt the code running in `context` (KeyboardInterrupt; state is kept)."""
        await self._t.call(self.calls.interrupt(context))
