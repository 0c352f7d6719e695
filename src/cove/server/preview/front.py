"""Preview HTTP: an ASGI middleware in front of the API that relays previews to the app.

It runs before API-key auth (a preview's credential is its own), picks out
preview requests by host or path (`address`), checks them (`access`), takes a
kept tunnel to the port or opens one through the agent (`upstream`), and
relays the exchange (`exchange`). WebSocket upgrades never come here:
`wsfront` takes them at the protocol level.
"""

from __future__ import annotations

import logging

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cove.runtime.endpoint import AgentEndpoint
from cove.server.agentclient import AgentUnreachable
from cove.server.preview.access import Grant, PreviewAccess
from cove.server.preview.address import Address, locate, referred_prefix
from cove.server.preview.exchange import Stale, Tunnel, TunnelPool, has_body, relay
from cove.server.preview.pages import error_page
from cove.server.preview.upstream import open_tunnel
from cove.server.sandboxes import SandboxService
from cove.wire.errors import CoveError

log = logging.getLogger("cove.server")


class Previews:
    """What both fronts (HTTP here, WebSocket in `wsfront`) need to serve a preview."""

    def __init__(self, service: SandboxService, access: PreviewAccess, domain: str) -> None:
        self.service = service
        self.access = access
        self.domain = domain
        self.pool = TunnelPool()

    def locate(self, host: str, target: str) -> Address | None:
        return locate(host, target, self.domain)

    def open(self, addr: Address, headers: dict[str, str]) -> tuple[Grant, AgentEndpoint]:
        """Check the request; the grant and the agent endpoint to tunnel through."""
        grant = self.access.authorize(addr, headers)
        endpoint = self.service.agent_endpoint(grant.record.owner, grant.record.id)
        return grant, endpoint

    async def tunnel(self, grant: Grant, socket: AgentEndpoint) -> Tunnel:
        try:
            return Tunnel(*await open_tunnel(socket, grant.port))
        except AgentUnreachable:
            raise await self.service.why_unreachable(grant.record.owner, grant.record.id) from None


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
            # A kept tunnel only for a request without a body: one that fails can go again.
            tunnel = None if has_body(scope) else self.previews.pool.take(socket, grant.port)
            if tunnel is None:
                tunnel = await self.previews.tunnel(grant, socket)
                reused = False
            else:
                reused = True
        except CoveError as err:
            await error_page(err)(scope, receive, send)
            return
        keep = False
        with self.previews.service.connection_open(grant.record.id):
            try:
                try:
                    keep = await relay(scope, receive, send, addr, grant, tunnel, reused=reused)
                except Stale:
                    tunnel.close()
                    try:
                        tunnel = await self.previews.tunnel(grant, socket)
                    except CoveError as err:
                        await error_page(err)(scope, receive, send)
                        return
                    keep = await relay(scope, receive, send, addr, grant, tunnel, reused=False)
            finally:
                if keep:
                    self.previews.pool.give(socket, grant.port, tunnel)
                else:
                    tunnel.close()


def navigates(headers: dict[str, str]) -> bool:
    """A browser loading a page (not a script's fetch, not a program)."""
    mode = headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in headers.get("accept", "")
