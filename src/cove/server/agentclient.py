"""A lean keep-alive HTTP/1.1 client for the agents' unix sockets.

The proxy's hop to an agent is always the same shape: one small request,
one Content-Length answer (the agent's own server, `cove.agent.httpserver`,
never sends anything else). httpx spent more CPU than the agent itself on
that hop (its sync/async detection alone retried failed imports on every
request), so the proxy speaks the little HTTP it needs directly, over asyncio
streams kept open between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from cove.wire import http1

CONNECT_TIMEOUT = 5.0
MAX_IDLE = 32  # idle connections kept per agent


class AgentUnreachable(ConnectionError):
    """The agent's socket refused us or the connection broke mid-answer."""


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
        with contextlib.suppress(Exception):
            self.writer.close()


class AgentConnectionPool:
    def __init__(self, socket: str) -> None:
        self.socket = socket
        self._idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket, limit=http1.MAX_HEAD), CONNECT_TIMEOUT
            )
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
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
