"""Which Cove client acts for an MCP request.

Over stdio there is one user, the one who launched `cove mcp`: one client
from the usual configuration. Over HTTP each request acts with the caller's
own API key, so a key sees only its own sandboxes (the control plane's
ownership rules apply unchanged).
"""

from __future__ import annotations

from typing import Any, Protocol

from cove.sdk import AsyncCove
from cove.wire.errors import AuthError


class ClientSource(Protocol):
    """Gives the client that acts for the request `ctx` (an mcp `Context`)."""

    def client_for(self, ctx: Any) -> AsyncCove: ...


class OneClient:
    """The stdio case: every request acts as the one configured user."""

    def __init__(self, client: AsyncCove) -> None:
        self.client = client

    def client_for(self, ctx: Any) -> AsyncCove:
        return self.client


class CallerKeyClients:
    """The HTTP case: a client per caller key, against the control plane's own API.

    The key was already checked by the control plane's auth middleware before
    the request reached MCP; here it only picks whose sandboxes are seen.
    """

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self._clients: dict[str, AsyncCove] = {}

    def client_for(self, ctx: Any) -> AsyncCove:
        headers = ctx.headers or {}
        auth = headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("send your Cove API key as 'Authorization: Bearer KEY'")
        key = key.strip()
        if key not in self._clients:
            self._clients[key] = AsyncCove(api_url=self.api_url, api_key=key, keep=True)
        return self._clients[key]

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.close()
