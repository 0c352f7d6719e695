"""MCP over streamable HTTP at the control plane's `/mcp`.

The control plane's auth middleware has checked the Bearer key before a
request gets here; each tool call then acts through the Cove SDK with that
same key against the control plane's own API, so a key sees exactly the
sandboxes it sees over REST. The upload/download tools are left out: they
would read and write the control plane's disk, not the caller's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from cove.mcp.clients import CallerKeyClients
from cove.mcp.server import build_mcp
from cove.settings import Settings


def own_api_url(settings: Settings) -> str:
    """The control plane's API as reached from itself (a wildcard bind via loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/api"


class McpEndpoint:
    def __init__(self, settings: Settings) -> None:
        self.clients = CallerKeyClients(own_api_url(settings))
        self.mcp = build_mcp(self.clients, local_files=False)
        # Builds the session manager; the Starlette app it returns is not used:
        # the route below joins the control plane's own app, behind its auth.
        # The SDK's DNS-rebinding check (Host must be localhost) is off: every
        # request carries an API key a rebinding page cannot have, and a
        # control plane behind a proxy is reached under other host names.
        self.mcp.streamable_http_app(
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
        )

    def route(self) -> Route:
        return Route(
            "/mcp",
            StreamableHTTPASGIApp(self.mcp.session_manager),
            methods=["GET", "POST", "DELETE"],
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            async with self.mcp.session_manager.run():
                yield
        finally:
            await self.clients.close()
