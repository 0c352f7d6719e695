"""The /toolbox/{id}/... HTTP proxy to each sandbox's agent.

HTTP goes through a keep-alive connection pool per sandbox over its unix
socket (no connect per call; see `agentclient`). WebSockets are relayed as
bytes by `wsfront`, before they reach this ASGI app.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Scope
from starlette.websockets import WebSocket

from cove.server.agentclient import AgentConnectionPool, AgentUnreachable
from cove.server.api import owner, parse_json, read_body
from cove.server.errors import reject
from cove.server.sandboxes import SandboxService
from cove.wire.errors import InternalError

# Request headers worth passing to the agent (it needs no auth: the socket is private).
FORWARD = ("content-type", "accept", "x-daytona-sdk-version")


class AgentClients:
    """One keep-alive connection pool per agent socket."""

    def __init__(self) -> None:
        self._pools: dict[str, AgentConnectionPool] = {}

    def get(self, socket: str) -> AgentConnectionPool:
        pool = self._pools.get(socket)
        if pool is None:
            pool = self._pools[socket] = AgentConnectionPool(socket)
        return pool

    async def drop(self, socket: str) -> None:
        pool = self._pools.pop(socket, None)
        if pool is not None:
            pool.close()

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class ToolboxProxy:
    def __init__(self, service: SandboxService, max_request_bytes: int) -> None:
        self.service = service
        self.limit = max_request_bytes
        self.clients = AgentClients()

    def routes(self) -> list[Route | WebSocketRoute]:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return [
            Route("/{sid}/{rest:path}", self.http, methods=methods),
            WebSocketRoute("/{sid}/{rest:path}", self.websocket),
        ]

    @staticmethod
    def _target(scope: Scope, query: str) -> str:
        """The agent-side path, as the client encoded it (never decoded and re-encoded)."""
        prefix = f"{scope.get('root_path', '')}/{scope['path_params']['sid']}"
        raw = scope.get("raw_path")
        if isinstance(raw, bytes) and raw.decode("latin-1").startswith(prefix + "/"):
            target = raw.decode("latin-1")[len(prefix) :]
        else:
            target = quote("/" + scope["path_params"]["rest"], safe="/:@!$&'()*+,;=-._~%")
        return f"{target}?{query}" if query else target

    async def http(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        socket = self.service.agent_socket(owner(request), sid)
        body = b""
        # DELETE too: Daytona's `DELETE /git/branches` names the branch in a JSON body.
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            # Checked here so malformed or oversized bodies never reach the agent.
            body = await read_body(request, self.limit)
            parse_json(body)
        headers = {k: v for k, v in request.headers.items() if k in FORWARD}
        try:
            resp = await self.clients.get(socket).request(
                request.method, self._target(request.scope, request.url.query), headers, body
            )
        except AgentUnreachable:
            await self.clients.drop(socket)
            raise self.service.explain_unreachable(owner(request), sid) from None
        media = resp.headers.get("content-type")
        return Response(resp.body, status_code=resp.status, media_type=media)

    async def websocket(self, ws: WebSocket) -> None:
        # Toolbox WebSockets never reach the ASGI app under `cove serve` or the
        # embedded server: uvicorn hands them to the byte relay in `wsfront`.
        err = InternalError(
            "toolbox WebSockets are relayed by Cove's WebSocket front: serve the app with "
            "`cove serve`, or give uvicorn `ws=server.uvicorn_ws()`"
        )
        await reject(ws.scope, ws.receive, ws.send, err)
