"""The /toolbox/{id}/... HTTP proxy to each sandbox's agent.

HTTP goes through a keep-alive connection pool per sandbox over its agent
endpoint, a unix socket or a node's relay (no connect per call; see
`agentclient`). JSON calls are read whole and
checked here (a malformed or oversized body never reaches an agent); file
transfers (`STREAMED_UPLOADS`, `STREAMED_DOWNLOADS`) stream both ways, so a
gigabyte file passes through in pieces of a few hundred KiB. WebSockets are
relayed as bytes by `wsfront`, before they reach this ASGI app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Scope
from starlette.websockets import WebSocket

from cove.runtime.endpoint import AgentEndpoint
from cove.server.agentclient import AgentConnectionPool, AgentStream, AgentUnreachable
from cove.server.api import owner, parse_json, read_body
from cove.server.errors import reject
from cove.server.records import SandboxRecord, SandboxState
from cove.server.sandboxes import SandboxService
from cove.wire.errors import InternalError
from cove.wire.numbers import is_number

# Request headers worth passing to the agent (it needs no auth: its endpoint is private).
FORWARD = ("content-type", "accept", "x-daytona-sdk-version", "range")
# Answer headers a streamed download keeps (the body's framing is the server's own).
STREAM_HEADERS = ("content-length", "content-range", "accept-ranges", "content-disposition")
# An agent's answer cut short on purpose (a file search past its time budget).
TRUNCATED = "x-cove-truncated"
# Agent routes whose request body is a file (multipart), sent on as it arrives.
STREAMED_UPLOADS = ("/files/bulk-upload",)
# Agent routes whose answer is a file, handed on as it arrives.
STREAMED_DOWNLOADS = ("/files/download", "/files/bulk-download")


class AgentClients:
    """One keep-alive connection pool per agent endpoint.

    A sandbox's pools are closed when it is deleted or stops (`forget`): kept,
    each sandbox that ever had toolbox traffic left its idle connections to a
    dead agent open in the server for ever, one file descriptor or more per
    sandbox (found by `make soak`)."""

    def __init__(self) -> None:
        self._pools: dict[AgentEndpoint, AgentConnectionPool] = {}
        self._of_sandbox: dict[str, set[AgentEndpoint]] = {}

    def get(self, endpoint: AgentEndpoint, sandbox_id: str | None = None) -> AgentConnectionPool:
        pool = self._pools.get(endpoint)
        if pool is None:
            pool = self._pools[endpoint] = AgentConnectionPool(endpoint)
        if sandbox_id is not None:
            self._of_sandbox.setdefault(sandbox_id, set()).add(endpoint)
        return pool

    def forget(self, sandbox_id: str) -> None:
        """Close the pools of a sandbox whose agent is gone (deleted or stopped)."""
        for endpoint in self._of_sandbox.pop(sandbox_id, set()):
            pool = self._pools.pop(endpoint, None)
            if pool is not None:
                pool.close()

    def watch(self, service: SandboxService) -> None:
        """Forget each sandbox's pools when it is deleted or leaves `started`."""
        service.on_delete.append(self.forget)

        def on_state(r: SandboxRecord) -> None:
            if r.state != SandboxState.STARTED:
                self.forget(r.id)

        service.on_state.append(on_state)

    async def drop(self, endpoint: AgentEndpoint) -> None:
        pool = self._pools.pop(endpoint, None)
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
        self.clients.watch(service)

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
        endpoint = self.service.agent_endpoint(owner(request), sid)
        route = "/" + request.path_params["rest"]
        if route in STREAMED_UPLOADS or route in STREAMED_DOWNLOADS:
            return await self._streamed(request, endpoint, route)
        body = b""
        # DELETE too: Daytona's `DELETE /git/branches` names the branch in a JSON body.
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            # Checked here so malformed or oversized bodies never reach the agent.
            body = await read_body(request, self.limit)
            parse_json(body)
        headers = {k: v for k, v in request.headers.items() if k in FORWARD}
        try:
            resp = await self.clients.get(endpoint, sid).request(
                request.method, self._target(request.scope, request.url.query), headers, body
            )
        except AgentUnreachable:
            await self.clients.drop(endpoint)
            raise await self.service.why_unreachable(owner(request), sid) from None
        media = resp.headers.get("content-type")
        answer = Response(resp.body, status_code=resp.status, media_type=media)
        if TRUNCATED in resp.headers:  # a file search that ran out of time
            answer.headers[TRUNCATED] = resp.headers[TRUNCATED]
        return answer

    async def _streamed(self, request: Request, endpoint: AgentEndpoint, route: str) -> Response:
        """A file transfer: the body goes on as it arrives, the answer comes back the same way."""
        sid = request.path_params["sid"]
        headers = {k: v for k, v in request.headers.items() if k in FORWARD}
        target = self._target(request.scope, request.url.query)
        pool = self.clients.get(endpoint, sid)
        try:
            if route in STREAMED_UPLOADS:
                declared = request.headers.get("content-length")
                length = int(declared) if declared and is_number(declared) else None
                answer = await pool.stream(
                    request.method, target, headers, request.stream(), length
                )
            else:
                body = b""
                if request.method in ("POST", "PUT", "PATCH"):
                    body = await read_body(request, self.limit)
                    parse_json(body)
                answer = await pool.stream(request.method, target, headers, _once(body), len(body))
        except ClientDisconnect:
            # The client left mid-upload; the agent's connection was closed, so the
            # agent removed what it had written. Nobody reads this answer.
            return Response(status_code=400)
        except AgentUnreachable:
            await self.clients.drop(endpoint)
            raise await self.service.why_unreachable(owner(request), sid) from None
        kept = {k: v for k, v in answer.headers.items() if k in STREAM_HEADERS}
        return StreamingResponse(
            _relay(answer),
            status_code=answer.status,
            headers=kept,
            media_type=answer.headers.get("content-type"),
        )

    async def websocket(self, ws: WebSocket) -> None:
        # Toolbox WebSockets never reach the ASGI app under `cove serve` or the
        # embedded server: uvicorn hands them to the byte relay in `wsfront`.
        err = InternalError(
            "toolbox WebSockets are relayed by Cove's WebSocket front: serve the app with "
            "`cove serve`, or give uvicorn `ws=server.uvicorn_ws()`"
        )
        await reject(ws.scope, ws.receive, ws.send, err)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _relay(answer: AgentStream) -> AsyncIterator[bytes]:
    try:
        async for piece in answer.chunks():
            yield piece
    finally:
        answer.close()  # a client gone mid-download: the agent connection ends too
