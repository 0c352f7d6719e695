"""The /toolbox/{id}/... proxy to each sandbox's agent, HTTP and WebSocket alike.

HTTP goes through a keep-alive connection pool per sandbox over its unix
socket (no connect per call; see `agentclient`). WebSockets are relayed message by message
to an agent WebSocket opened on the same socket; close codes pass through
unchanged (the official SDK reads 1000 and 4008).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Scope
from starlette.websockets import WebSocket, WebSocketDisconnect

from cove.errors import CoveError
from cove.server.agentclient import AgentConnectionPool, AgentUnreachable
from cove.server.api import owner, parse_json, read_body
from cove.server.errors import reject
from cove.server.sandboxes import SandboxService
from cove.websocket import ConnectionClosed, new_key
from cove.websocket import WebSocket as AgentSocket

# Request headers worth passing to the agent (it needs no auth: the socket is private).
FORWARD = ("content-type", "accept", "sec-websocket-protocol", "x-daytona-sdk-version")


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
        if request.method in ("POST", "PUT", "PATCH"):
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
        sid = ws.path_params["sid"]
        who = ws.state.owner
        try:
            socket = self.service.agent_socket(who, sid)
            reader, writer = await asyncio.open_unix_connection(socket)
        except CoveError as err:
            await reject(ws.scope, ws.receive, ws.send, err)
            return
        except OSError:
            await reject(ws.scope, ws.receive, ws.send, self.service.explain_unreachable(who, sid))
            return
        try:
            agent = await self._agent_handshake(ws, reader, writer)
            if agent is None:
                return
            await self._relay(ws, agent)
        finally:
            writer.close()

    async def _agent_handshake(
        self, ws: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> AgentSocket | None:
        target = self._target(ws.scope, ws.url.query)
        lines = [
            f"GET {target} HTTP/1.1",
            "Host: agent",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {new_key()}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in ws.headers.items() if k in FORWARD]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ")[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if status != 101:
            # The agent refused (unknown session, bad query...): pass its answer on.
            length = int(headers.get("content-length", 0))
            body = await reader.readexactly(length) if length else b""
            response = Response(body, status_code=status, media_type=headers.get("content-type"))
            if "websocket.http.response" in ws.scope.get("extensions", {}):
                await ws.send_denial_response(response)
            else:
                await ws.close(1008)
            return None
        await ws.accept(subprotocol=headers.get("sec-websocket-protocol"))
        return AgentSocket(reader, writer, client=True)

    @staticmethod
    async def _relay(ws: WebSocket, agent: AgentSocket) -> None:
        async def client_to_agent() -> None:
            try:
                while True:
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        await agent.close(msg.get("code", 1000))
                        return
                    if msg.get("bytes") is not None:
                        await agent.send_bytes(msg["bytes"])
                    elif msg.get("text") is not None:
                        await agent.send_text(msg["text"])
            except (ConnectionError, WebSocketDisconnect):
                await agent.close(1001)

        async def agent_to_client() -> None:
            try:
                while True:
                    m = await agent.recv()
                    if m.is_text:
                        await ws.send_text(m.text)
                    else:
                        await ws.send_bytes(m.data)
            except ConnectionClosed as closed:
                code = closed.code if closed.code not in (1005, 1006) else 1011
                reason = (
                    closed.reason if code != 1011 or closed.reason else "sandbox agent went away"
                )
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await ws.close(code, reason)

        tasks = [asyncio.create_task(client_to_agent()), asyncio.create_task(agent_to_client())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
