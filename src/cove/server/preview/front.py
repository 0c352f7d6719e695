"""Preview HTTP: an ASGI middleware in front of the API that relays previews to the app.

It runs before API-key auth (a preview's credential is its own), picks out
preview requests by host or path (`address`), checks them (`access`), opens
the agent's tunnel to the port (`upstream`) and relays one exchange: the
request body as it arrives, the answer as the app produces it (server-sent
events and chunked streams pass piece by piece; nothing is read whole). A
client that leaves ends the tunnel, so an endless stream stops with it.
WebSocket upgrades never come here: `wsfront` takes them at the protocol level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cove.server.agentclient import AgentUnreachable, read_framed
from cove.server.preview.access import Grant, PreviewAccess
from cove.server.preview.address import Address, locate, referred_prefix
from cove.server.preview.pages import error_page
from cove.server.preview.upstream import open_tunnel, request_head, response_headers
from cove.server.sandboxes import SandboxService
from cove.wire import http1
from cove.wire.errors import CoveError, PortUnreachable

log = logging.getLogger("cove.server")


class Previews:
    """What both fronts (HTTP here, WebSocket in `wsfront`) need to serve a preview."""

    def __init__(self, service: SandboxService, access: PreviewAccess, domain: str) -> None:
        self.service = service
        self.access = access
        self.domain = domain

    def locate(self, host: str, target: str) -> Address | None:
        return locate(host, target, self.domain)

    def open(self, addr: Address, headers: dict[str, str]) -> tuple[Grant, str]:
        """Check the request; the grant and the agent socket to tunnel through."""
        grant = self.access.authorize(addr, headers)
        socket = self.service.agent_socket(grant.record.owner, grant.record.id)
        return grant, socket

    async def tunnel(
        self, grant: Grant, socket: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await open_tunnel(socket, grant.port)
        except AgentUnreachable:
            raise self.service.explain_unreachable(grant.record.owner, grant.record.id) from None


class PreviewFront:
    def __init__(self, app: ASGIApp, previews: Previews) -> None:
        self.app = app
        self.previews = previews

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        raw = scope.get("raw_path") or scope["path"].encode()
        target = raw.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            addr = self.previews.locate(headers.get("host", ""), target)
            if addr is None:
                host = headers.get("host", "")
                prefix = referred_prefix(scope["path"], headers.get("referer"), host)
                if prefix is None:
                    await self.app(scope, receive, send)
                else:  # an app's absolute path, asked for by one of its pages
                    await RedirectResponse(prefix + target, 307)(scope, receive, send)
                return
            if addr.bare and scope["method"] == "GET" and navigates(headers):
                # A browser must see the app under "/" so that relative links resolve.
                query = target.partition("?")[2]
                url = addr.prefix + "/" + ("?" + query if query else "")
                await RedirectResponse(url, status_code=308)(scope, receive, send)
                return
            grant, socket = self.previews.open(addr, headers)
            if grant.set_cookie and scope["method"] == "GET" and navigates(headers):
                # The token leaves the address bar, history and later Referers: the
                # cookie carries it from now on.
                moved = RedirectResponse(addr.prefix + grant.target, 303)
                moved.headers.append("set-cookie", grant.set_cookie)
                await moved(scope, receive, send)
                return
            reader, writer = await self.previews.tunnel(grant, socket)
        except CoveError as err:
            await error_page(err)(scope, receive, send)
            return
        with self.previews.service.connection_open(grant.record.id):
            try:
                await relay(scope, receive, send, addr, grant, reader, writer)
            finally:
                writer.close()


def navigates(headers: dict[str, str]) -> bool:
    """A browser loading a page (not a script's fetch, not a program)."""
    mode = headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in headers.get("accept", "")


async def relay(
    scope: Scope,
    receive: Receive,
    send: Send,
    addr: Address,
    grant: Grant,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """One exchange with the app; the client's answer is built from the app's as it comes."""
    client = scope.get("client") or ("", 0)
    items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    writer.write(
        request_head(
            scope["method"], grant.target, items,
            prefix=addr.prefix, client=str(client[0]), scheme=scope.get("scheme", "http"),
        )
    )  # fmt: skip
    chunked = any(k == "transfer-encoding" and "chunked" in v.lower() for k, v in items)
    sending = asyncio.ensure_future(_send_body(receive, writer, chunked))
    try:
        try:
            raw = await reader.readuntil(http1.END)
            while 100 <= (status := http1.parse_status(raw).status) < 200:
                raw = await reader.readuntil(http1.END)  # interim answers (100 Continue)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, http1.HeadError):
            err = PortUnreachable(
                f"the app on port {grant.port} closed the connection without answering"
            )
            await error_page(err)(scope, receive, send)
            return
        fields = http1.field_list(raw)
        extra = []
        if grant.set_cookie:
            extra.append((b"set-cookie", grant.set_cookie.encode("latin-1")))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": response_headers(fields, addr.prefix) + extra,
            }
        )
        head = scope["method"] == "HEAD"
        app_headers = dict(fields)
        try:
            async for piece in read_framed(reader, status, app_headers, head=head):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            # The app (or the client) went away mid-answer: the client sees the answer cut.
            log.debug("preview answer of port %s ended early: %r", grant.port, exc)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
            await sending


async def _send_body(receive: Receive, writer: asyncio.StreamWriter, chunked: bool) -> None:
    """Pass the request body on as it arrives; then wait for the client to leave, and
    end the tunnel when it does (the app's answer may be an endless stream)."""
    message: Message = await receive()
    while message["type"] == "http.request":
        body = message.get("body", b"")
        if body:
            writer.write(http1.chunk_head(len(body)) + body + b"\r\n" if chunked else body)
            await writer.drain()
        if not message.get("more_body", False):
            break
        message = await receive()
    if chunked:
        writer.write(http1.LAST_CHUNK)
        await writer.drain()
    while message["type"] != "http.disconnect":
        message = await receive()
    writer.close()
