"""Interactive PTYs: `sandbox.process.create_pty_session(...)` and its handle.

Daytona's names and shapes: `create_pty_session`, `connect_pty_session`,
`resize_pty_session`, `kill_pty_session`, `list_pty_sessions` and
`get_pty_session_info` on `sandbox.process` (mixed in from `PtyMethods` /
`AsyncPtyMethods`), returning a `PtyHandle` (iterate it for output, or
`wait(on_data=...)`) or an `AsyncPtyHandle` (output goes to `on_data` as it
arrives). Both handles send input, resize, kill, wait for the exit code and
disconnect. Requests and the stream's meaning are shared (`_pty.py`); only
the socket I/O differs between the faces.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection as AsyncWebSocket
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection as SyncWebSocket

from cove.sdk._pty import CONNECT_TIMEOUT, PtyCalls, PtyStream
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.sdk.models import PtyResult, PtySessionInfo, PtySize
from cove.wire.errors import Gone, Timeout

DataHandler = Callable[[bytes], Any]  # may return an awaitable (async face)


class _HandleBase:
    def __init__(self, pty_id: str, calls: PtyCalls) -> None:
        self._stream = PtyStream(pty_id)
        self._calls = calls

    @property
    def session_id(self) -> str:
        return self._stream.pty_id

    @property
    def exit_code(self) -> int | None:
        """The shell's exit code once it has exited, else None."""
        return self._stream.exit_code

    @property
    def error(self) -> str | None:
        return self._stream.error

    def is_connected(self) -> bool:
        s = self._stream
        return s.connected and not s.ended and s.exit_code is None

    def _check_connected(self) -> None:
        if not self.is_connected():
            raise Gone(f"PTY session {self.session_id!r} is not connected (exited or closed)")

    def _timed_out(self) -> Timeout:
        return Timeout(f"PTY session {self.session_id!r} did not connect in time")


class PtyHandle(_HandleBase):
    """A connected PTY (sync). Iterating yields output until the shell exits."""

    def __init__(
        self, ws: SyncWebSocket, pty_id: str, calls: PtyCalls, transport: SyncTransport
    ) -> None:
        super().__init__(pty_id, calls)
        self._ws, self._t = ws, transport

    def wait_for_connection(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Block until the server says "connected"; raise its error if it refused."""
        deadline = time.monotonic() + timeout
        try:
            while not self._stream.connected:
                self._stream.feed(self._ws.recv(timeout=max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            self.disconnect()
            raise self._timed_out() from None
        except ConnectionClosed:
            self._stream.closed(self._ws.close_code, self._ws.close_reason)
            if not self._stream.connected:
                raise self._stream.connect_error("open PTY session") from None

    def send_input(self, data: str | bytes) -> None:
        self._check_connected()
        try:
            self._ws.send(data.encode() if isinstance(data, str) else data)
        except ConnectionClosed:
            raise Gone(f"PTY session {self.session_id!r} closed while sending") from None

    def resize(self, pty_size: PtySize) -> PtySessionInfo:
        return self._t.call(self._calls.resize(self.session_id, pty_size))

    def kill(self) -> None:
        """Kill the shell and everything it started (the stream then ends)."""
        self._t.call(self._calls.kill(self.session_id))

    def __iter__(self) -> Iterator[bytes]:
        return self._events(None)

    def _events(self, deadline: float | None) -> Iterator[bytes]:
        """Output until the socket closes, or until `deadline` (it then stays open)."""
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                frame = self._ws.recv(timeout=left)
            except TimeoutError:
                return
            except ConnectionClosed:
                self._stream.closed(self._ws.close_code, self._ws.close_reason)
                return
            if data := self._stream.feed(frame):
                yield data

    def wait(
        self, on_data: Callable[[bytes], None] | None = None, timeout: float | None = None
    ) -> PtyResult:
        """Feed output to `on_data` until the shell exits (or `timeout` seconds pass:
        then `exit_code` is None and the session stays connected)."""
        deadline = time.monotonic() + timeout if timeout else None
        for data in self._events(deadline):
            if on_data is not None:
                on_data(data)
        return self._stream.result()

    def disconnect(self) -> None:
        """Close this connection; the shell keeps running (`kill()` ends it)."""
        self._stream.detach()
        self._ws.close()

    def __enter__(self) -> PtyHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.disconnect()


class AsyncPtyHandle(_HandleBase):
    """A connected PTY (async): a task reads the socket and calls `on_data`.

    An exception raised by `on_data` stops the reading and is raised by `wait()`.
    """

    def __init__(
        self, ws: AsyncWebSocket, pty_id: str, calls: PtyCalls, transport: AsyncTransport,
        on_data: DataHandler | None = None,
    ) -> None:  # fmt: skip
        super().__init__(pty_id, calls)
        self._ws, self._t, self._on_data = ws, transport, on_data
        self._ready = asyncio.Event()  # connected, or closed
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                data = self._stream.feed(frame)
                if self._stream.connected:
                    self._ready.set()
                if data and self._on_data is not None:
                    pending = self._on_data(data)
                    if inspect.isawaitable(pending):
                        await pending
        except ConnectionClosed:
            pass  # an error close: its code and reason are read below
        finally:
            self._stream.closed(self._ws.close_code, self._ws.close_reason)
            self._ready.set()

    async def wait_for_connection(self, timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            await self.disconnect()
            raise self._timed_out() from None
        if not self._stream.connected:
            raise self._stream.connect_error("open PTY session")

    async def send_input(self, data: str | bytes) -> None:
        self._check_connected()
        try:
            await self._ws.send(data.encode() if isinstance(data, str) else data)
        except ConnectionClosed:
            raise Gone(f"PTY session {self.session_id!r} closed while sending") from None

    async def resize(self, pty_size: PtySize) -> PtySessionInfo:
        return await self._t.call(self._calls.resize(self.session_id, pty_size))

    async def kill(self) -> None:
        """Kill the shell and everything it started (the stream then ends)."""
        await self._t.call(self._calls.kill(self.session_id))

    async def wait(self) -> PtyResult:
        """Until the shell exits; cancelling this only stops waiting."""
        await asyncio.shield(self._reader)
        return self._stream.result()

    async def disconnect(self) -> None:
        """Close this connection; the shell keeps running (`kill()` ends it)."""
        self._stream.detach()
        if not self._reader.done():
            self._reader.cancel()
            await asyncio.wait([self._reader])
        await self._ws.close()

    async def __aenter__(self) -> AsyncPtyHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.disconnect()


class PtyMethods:
    """The PTY methods of `sandbox.process` (sync face)."""

    _t: SyncTransport
    pty_calls: PtyCalls

    def create_pty_session(
        self, id: str, cwd: str | None = None, envs: dict[str, str] | None = None,
        pty_size: PtySize | None = None,
    ) -> PtyHandle:  # fmt: skip
        """Start a shell on a new terminal (80x24 unless `pty_size`) and connect to it."""
        url = self.pty_calls.create_url(id, cwd, pty_size)
        ws = self._t.websocket(url, "create PTY session", PtyCalls.subprotocols(envs))
        return self._connected(PtyHandle(ws, id, self.pty_calls, self._t))

    def connect_pty_session(self, session_id: str) -> PtyHandle:
        """Attach to a running PTY (it replays its recent output first)."""
        url = self.pty_calls.connect_url(session_id)
        ws = self._t.websocket(url, "connect PTY session", PtyCalls.subprotocols(None))
        return self._connected(PtyHandle(ws, session_id, self.pty_calls, self._t))

    @staticmethod
    def _connected(handle: PtyHandle) -> PtyHandle:
        try:
            handle.wait_for_connection()
        except BaseException:
            handle.disconnect()
            raise
        return handle

    def list_pty_sessions(self) -> list[PtySessionInfo]:
        return self._t.call(self.pty_calls.list())

    def get_pty_session_info(self, session_id: str) -> PtySessionInfo:
        return self._t.call(self.pty_calls.info(session_id))

    def kill_pty_session(self, session_id: str) -> None:
        self._t.call(self.pty_calls.kill(session_id))

    def resize_pty_session(self, session_id: str, pty_size: PtySize) -> PtySessionInfo:
        return self._t.call(self.pty_calls.resize(session_id, pty_size))


class AsyncPtyMethods:
    """The PTY methods of `sandbox.process` (async face); `on_data` gets the output."""

    _t: AsyncTransport
    pty_calls: PtyCalls

    async def create_pty_session(
        self, id: str, on_data: DataHandler | None = None, cwd: str | None = None,
        envs: dict[str, str] | None = None, pty_size: PtySize | None = None,
    ) -> AsyncPtyHandle:  # fmt: skip
        """Start a shell on a new terminal (80x24 unless `pty_size`) and connect to it."""
        url = self.pty_calls.create_url(id, cwd, pty_size)
        ws = await self._t.websocket(url, "create PTY session", PtyCalls.subprotocols(envs))
        return await self._connected(AsyncPtyHandle(ws, id, self.pty_calls, self._t, on_data))

    async def connect_pty_session(
        self, session_id: str, on_data: DataHandler | None = None
    ) -> AsyncPtyHandle:
        """Attach to a running PTY (it replays its recent output first)."""
        url = self.pty_calls.connect_url(session_id)
        ws = await self._t.websocket(url, "connect PTY session", PtyCalls.subprotocols(None))
        handle = AsyncPtyHandle(ws, session_id, self.pty_calls, self._t, on_data)
        return await self._connected(handle)

    @staticmethod
    async def _connected(handle: AsyncPtyHandle) -> AsyncPtyHandle:
        try:
            await handle.wait_for_connection()
        except BaseException:
            await handle.disconnect()
            raise
        return handle

    async def list_pty_sessions(self) -> list[PtySessionInfo]:
        return await self._t.call(self.pty_calls.list())

    async def get_pty_session_info(self, session_id: str) -> PtySessionInfo:
        return await self._t.call(self.pty_calls.info(session_id))

    async def kill_pty_session(self, session_id: str) -> None:
        await self._t.call(self.pty_calls.kill(session_id))

    async def resize_pty_session(self, session_id: str, pty_size: PtySize) -> PtySessionInfo:
        return await self._t.call(self.pty_calls.resize(session_id, pty_size))


__all__ = ["AsyncPtyHandle", "AsyncPtyMethods", "PtyHandle", "PtyMethods"]
