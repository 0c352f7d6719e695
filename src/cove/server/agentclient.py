"""A lean keep-alive HTTP/1.1 client for the agents (unix sockets, or node relays).

The proxy's hop to an agent is nearly always the same shape: one small
request, one Content-Length answer. httpx spent more CPU than the agent itself
on that hop (its sync/async detection alone retried failed imports on every
request), so the proxy speaks the little HTTP it needs directly, over asyncio
streams kept open between requests: `request` for that fast path. File
transfers use `stream` instead: the request body is sent as it comes from the
client and the answer handed on as it arrives (`AgentStream`), so neither
hop holds a file in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from cove.runtime.endpoint import AgentEndpoint
from cove.wire import http1

CONNECT_TIMEOUT = 5.0
MAX_IDLE = 32  # idle connections kept per agent
STREAM_READ = 1024 * 1024  # bytes per piece of a streamed answer
STREAM_LIMIT = 2 * 1024 * 1024  # the read buffer of a streaming connection
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


@functools.cache
def keep_transfer_buffers() -> None:
    """Serve transfer-sized allocations from heap memory that stays mapped.

    Every piece of a streamed file (a few hundred KiB, made by uvicorn and by
    asyncio's reads) is a fresh allocation; by default glibc maps such blocks
    anew or trims the heap under them, so each piece cost page faults on
    zeroed pages: measured, 1.0-1.3 s of kernel time per 512 MiB upload in
    the server, 0.35-0.4 s with these settings, and ~300 vs ~450 MiB/s. The
    price: up to 16 MiB of freed heap kept, only once a transfer has run
    (the idle trim in `server.memory` still gives it back after bursts).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024)
        libc.mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024)
    except (OSError, AttributeError):
        return  # not glibc: its defaults


class AgentUnreachable(ConnectionError):
    """The agent's endpoint refused us or the connection broke mid-answer."""


@dataclass
class AgentResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Stale(Exception):
    """A reused connection was closed by the agent before it answered anything."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        # A transport already closed, or a loop already shut, is what close can meet here.
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


class AgentConnectionPool:
    def __init__(self, endpoint: AgentEndpoint) -> None:
        self.endpoint = endpoint
        self._idle: list[_Conn] = []
        self.closed = False  # its agent is gone: a connection given back is closed, not kept

    async def _connect(self, limit: int = http1.MAX_HEAD) -> _Conn:
        try:
            sock = await asyncio.wait_for(self.endpoint.connect(), CONNECT_TIMEOUT)
            reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        except (OSError, TimeoutError) as exc:
            raise AgentUnreachable(f"cannot connect to the agent: {exc}") from None
        return _Conn(reader, writer)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> AgentResponse:
        fields = [("Host", "agent")]
        fields += [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
        if body or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(body))))
        data = http1.request_head(method, target, fields) + body
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, data, reused=True)
            except _Stale:
                continue  # the agent restarted or dropped it: try the next one
        return await self._exchange(await self._connect(), data, reused=False)

    async def _exchange(self, conn: _Conn, data: bytes, *, reused: bool) -> AgentResponse:
        try:
            try:
                conn.writer.write(data)
                await conn.writer.drain()
                raw = await conn.reader.readuntil(http1.END)
            except (OSError, asyncio.IncompleteReadError) as exc:
                # A kept connection the agent dropped (it restarted, or went
                # away): nothing was answered, so a fresh connection may retry.
                partial = getattr(exc, "partial", b"")
                if reused and not partial:
                    raise _Stale from None
                raise
            head = http1.parse_status(raw)
            response = AgentResponse(head.status, head.headers, b"")
            keep = http1.keeps_alive(head.headers)
            length = int(response.headers.get("content-length") or 0)
            if response.status in (204, 304) or 100 <= response.status < 200:
                length = 0
            elif "content-length" not in response.headers:
                response.body = await conn.reader.read()  # delimited by the close
                keep = False
            if length:
                response.body = await conn.reader.readexactly(length)
        except _Stale:
            conn.close()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise AgentUnreachable(f"the agent connection broke: {exc!r}") from None
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            conn.close()
            raise
        self._give_back(conn, keep)
        return response

    async def stream(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: AsyncIterable[bytes],
        length: int | None,
    ) -> AgentStream:
        """Send `body` as it comes (Content-Length if known, else chunked); the answer
        is read as the caller iterates `AgentStream.chunks()`.

        Always on a fresh connection: a streamed body cannot be replayed on
        another if a kept one turns out stale.
        """
        keep_transfer_buffers()
        conn = await self._connect(limit=STREAM_LIMIT)
        fields = [("Host", "agent")]
        fields += [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
        if length is None:
            fields.append(("Transfer-Encoding", "chunked"))
        else:
            fields.append(("Content-Length", str(length)))
        head = http1.request_head(method, target, fields)
        # The agent may answer before the body is all sent (a full disk, a bad
        # path): wait for its answer while sending, and stop sending when it comes.
        sending = asyncio.ensure_future(self._send_body(conn, head, body, length))
        answering = asyncio.ensure_future(conn.reader.readuntil(http1.END))
        try:
            await asyncio.wait({sending, answering}, return_when=asyncio.FIRST_COMPLETED)
            sent = sending.done() and not sending.cancelled() and sending.result()
            if not sending.done():
                sending.cancel()
            try:
                raw = await answering
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                raise AgentUnreachable(f"the agent connection broke: {exc!r}") from None
            answer = http1.parse_status(raw)
        except BaseException:
            sending.cancel()
            answering.cancel()
            conn.close()
            raise
        return AgentStream(answer.status, answer.headers, conn, self, keep=sent)

    @staticmethod
    async def _send_body(
        conn: _Conn, head: bytes, body: AsyncIterable[bytes], length: int | None
    ) -> bool:
        """Whether the whole body went out; False when the agent answered early and closed
        (it refused the body: its answer is waiting to be read)."""
        chunked = length is None
        try:
            conn.writer.write(head)
            async for piece in body:
                if not piece:
                    continue
                if chunked:
                    conn.writer.writelines((http1.chunk_head(len(piece)), piece, b"\r\n"))
                else:
                    conn.writer.write(piece)
                await conn.writer.drain()
            if chunked:
                conn.writer.write(http1.LAST_CHUNK)
            await conn.writer.drain()
        except OSError:
            return False
        return True

    def release(self, conn: _Conn, keep: bool) -> None:
        """Take back a streamed exchange's connection (kept only if its answer was read whole)."""
        self._give_back(conn, keep)

    def _give_back(self, conn: _Conn, keep: bool) -> None:
        if keep and not self.closed and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class AgentStream:
    """An agent's answer whose body is read piece by piece.

    Iterate `chunks()` to the end (the connection then goes back to the pool)
    or call `close()`; a consumer that stops early closes the connection, as
    the rest of the body is unread.
    """

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        conn: _Conn,
        pool: AgentConnectionPool,
        *,
        keep: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._pool = pool
        self._keep = keep and http1.keeps_alive(headers)
        self._open = True

    async def chunks(self) -> AsyncIterator[bytes]:
        finished = False
        if not ends_by_framing(self.status, self.headers):
            self._keep = False  # delimited by the close
        try:
            async for data in read_framed(self._conn.reader, self.status, self.headers):
                yield data
            finished = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise AgentUnreachable(f"the agent connection broke mid-answer: {exc!r}") from None
        finally:
            self._done(finished)

    def _done(self, finished: bool) -> None:
        if self._open:
            self._open = False
            self._pool.release(self._conn, self._keep and finished)

    def close(self) -> None:
        """Give up on the rest of the body (the connection cannot be reused)."""
        self._done(False)


def ends_by_framing(status: int, headers: dict[str, str], *, head: bool = False) -> bool:
    """Whether an answer's body ends by its framing (else by the connection's close)."""
    return (
        head
        or status in (204, 304)
        or 100 <= status < 200
        or http1.is_chunked(headers)
        or "content-length" in headers
    )


async def read_framed(
    reader: asyncio.StreamReader, status: int, headers: dict[str, str], *, head: bool = False
) -> AsyncIterator[bytes]:
    """An answer's body piece by piece, as its framing says (`head`: the answer to a HEAD).

    Raises `asyncio.IncompleteReadError` when the peer closes before the body's end.
    """
    if head or status in (204, 304) or 100 <= status < 200:
        return
    if http1.is_chunked(headers):
        while size := http1.parse_chunk_size(await reader.readuntil(b"\r\n")):
            left = size
            while left:
                data = await reader.read(min(left, STREAM_READ))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
            await reader.readexactly(2)
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailer fields
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            data = await reader.read(min(left, STREAM_READ))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data
    else:  # delimited by the close
        while data := await reader.read(STREAM_READ):
            yield data
