"""One HTTP exchange with a preview's app over a tunnel, and the tunnels kept between them.

The request body goes on as it arrives, the answer comes back as the app
produces it (server-sent events and chunked streams piece by piece, nothing
read whole). A client that leaves ends the tunnel, so an endless stream stops
with it. After an answer read to its end from an app that keeps connections
alive, the tunnel is kept (`TunnelPool`) for the next bodiless request to the
same port: no agent round trip and no new connection to the app. A kept
tunnel the app closed meanwhile fails before any answer byte (`Stale`), and
that request, having no body to replay, goes again on a fresh tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from starlette.types import Message, Receive, Scope, Send

from cove.runtime.endpoint import AgentEndpoint
from cove.server.agentclient import ends_by_framing, read_framed
from cove.server.preview.access import Grant
from cove.server.preview.address import Address
from cove.server.preview.pages import error_page
from cove.server.preview.upstream import request_head, response_headers
from cove.wire import http1
from cove.wire.errors import PortUnreachable

log = logging.getLogger("cove.server")

KEEP_PER_APP = 8  # idle tunnels kept per sandbox port
KEEP_SECONDS = 4.0  # under the usual keep-alive timeouts of app servers (node: 5 s)
BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class Stale(Exception):
    """A kept tunnel ended before the app answered anything (the request may go again)."""


@dataclass
class Tunnel:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        fresh = time.monotonic() - self.idle_since < KEEP_SECONDS
        return fresh and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class TunnelPool:
    def __init__(self) -> None:
        self._idle: dict[tuple[AgentEndpoint, int], list[Tunnel]] = {}

    def take(self, socket: AgentEndpoint, port: int) -> Tunnel | None:
        kept = self._idle.get((socket, port))
        while kept:
            tunnel = kept.pop()
            if tunnel.usable():
                return tunnel
            tunnel.close()
        return None

    def give(self, socket: AgentEndpoint, port: int, tunnel: Tunnel) -> None:
        kept = self._idle.setdefault((socket, port), [])
        for old in [t for t in kept if not t.usable()]:
            kept.remove(old)
            old.close()
        if len(kept) >= KEEP_PER_APP:
            tunnel.close()
            return
        tunnel.idle_since = time.monotonic()
        kept.append(tunnel)
        # Closed once too old to be used, not at the port's next request: that
        # never comes for a sandbox deleted or a preview left, and each kept
        # tunnel was an open socket in the server for ever (found by `make soak`).
        # The margin: a loop may run a timer a clock tick early.
        with contextlib.suppress(RuntimeError):  # no loop: nothing to schedule on
            loop = asyncio.get_running_loop()
            loop.call_later(KEEP_SECONDS + 0.1, self._expire, (socket, port), tunnel)

    def _expire(self, key: tuple[AgentEndpoint, int], tunnel: Tunnel) -> None:
        kept = self._idle.get(key, [])
        if tunnel.usable() or not any(t is tunnel for t in kept):
            return  # taken meanwhile (given back since: its own timer runs)
        kept[:] = [t for t in kept if t is not tunnel]
        tunnel.close()
        if not kept:
            del self._idle[key]

    def close(self) -> None:
        for kept in self._idle.values():
            for tunnel in kept:
                tunnel.close()
        self._idle.clear()


def has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def relay(
    scope: Scope,
    receive: Receive,
    send: Send,
    addr: Address,
    grant: Grant,
    tunnel: Tunnel,
    *,
    reused: bool,
) -> bool:
    """One exchange; whether the tunnel may be kept for another. `Stale` when a `reused`
    tunnel turned out closed before the app answered."""
    reader, writer = tunnel.reader, tunnel.writer
    client = scope.get("client") or ("", 0)
    items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    body = has_body(scope)
    head = request_head(
        scope["method"], grant.target, items, prefix=addr.prefix, client=str(client[0]),
        scheme=scope.get("scheme", "http"), keep_alive=not body,
    )  # fmt: skip
    chunked = any(k == "transfer-encoding" and "chunked" in v.lower() for k, v in items)
    finished = asyncio.Event()  # the answer is whole: the client's leaving is no reason to close
    sending = asyncio.ensure_future(_send_body(receive, writer, body, chunked, finished))
    try:
        try:
            writer.write(head)
            raw = await reader.readuntil(http1.END)
            while 100 <= (status := http1.parse_status(raw).status) < 200:
                raw = await reader.readuntil(http1.END)  # interim answers (100 Continue)
        except BROKEN as exc:
            if reused and not getattr(exc, "partial", b""):
                raise Stale from None
            err = PortUnreachable(
                f"the app on port {grant.port} closed the connection without answering"
            )
            await error_page(err)(scope, receive, send)
            return False
        fields = http1.field_list(raw)
        extra = []
        if grant.set_cookie:
            extra.append((b"set-cookie", grant.set_cookie.encode("latin-1")))
        headers = response_headers(fields, addr.prefix) + extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        is_head = scope["method"] == "HEAD"
        app_headers = dict(fields)
        try:
            async for piece in read_framed(reader, status, app_headers, head=is_head):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except BROKEN as exc:
            # The app (or the client) went away mid-answer: the client sees the answer cut.
            log.debug("preview answer of port %s ended early: %r", grant.port, exc)
            return False
        finished.set()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        # Requests with a body asked for `Connection: close`: their tunnels end here.
        return (
            not body
            and ends_by_framing(status, app_headers, head=is_head)
            and http1.keeps_alive(app_headers)
            and not writer.is_closing()
        )
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
            await sending


async def _send_body(
    receive: Receive,
    writer: asyncio.StreamWriter,
    body: bool,
    chunked: bool,
    finished: asyncio.Event,
) -> None:
    """Pass the request body on as it arrives; then wait for the client to leave, and
    end the tunnel when it does before the answer is whole (it may be an endless stream)."""
    message: Message = {"type": "http.request"}
    if body:
        message = await receive()
        while message["type"] == "http.request":
            piece = message.get("body", b"")
            if piece:
                writer.write(http1.chunk_head(len(piece)) + piece + b"\r\n" if chunked else piece)
                await writer.drain()
            if not message.get("more_body", False):
                break
            message = await receive()
        if chunked and message["type"] == "http.request":
            writer.write(http1.LAST_CHUNK)
            await writer.drain()
    while message["type"] != "http.disconnect":
        message = await receive()
    if not finished.is_set():
        writer.close()
