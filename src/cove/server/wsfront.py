"""The toolbox WebSocket front: a byte relay between the client and the agent.

uvicorn hands every WebSocket upgrade to the protocol class named in its
config (`ws=`). This one takes the `/toolbox/{id}/...` upgrades and the
previews' (`/preview/{id}/{port}/...`, or a preview host) itself and leaves
every other path to uvicorn's own WebSocket protocol, unchanged.

A preview upgrade is checked by `server.preview` (its own credential, not an
API key), then goes through the agent's tunnel to the sandbox port: the
tunnel's 101 first, then the app's own answer to the upgrade, which is
treated as the agent's is below (the app's agreed compression kept).

For a toolbox upgrade it checks the API key (or a dashboard session cookie
with this server's Origin) and the sandbox, connects to the agent's endpoint
(its unix socket, or a node's relay), replays the upgrade request there (only
the headers the agent needs: never the client's key), and reads the agent's
answer:

- 101: the front answers the client's handshake itself, then copies bytes
  both ways, verbatim. Frames are never decoded, re-encoded or buffered as
  messages, which is what made the interpreter round trip and log streaming
  cost a WebSocket implementation per hop. Each direction stops reading when
  the other side's send buffer is full, so a slow reader slows its writer.
- anything else (404 unknown session, 409 duplicate PTY...): the front sends
  the status and body on with `Connection: close`, as a refused upgrade.

The agent runs inside the sandbox, next to the user's code, so the front
never lets it speak HTTP to the client: the 101 is written here (its accept
key computed from the client's key), and no client byte reaches the agent
before that 101, so a connection can never go back to a client's HTTP pool
with the agent on its other end.

Frame boundaries of the agent's side are tracked (headers only, payloads
skipped by length) for one reason: when the agent dies between frames, the
client gets a close frame, 1011 "sandbox agent went away", not a bare TCP
reset; a server shutdown sends 1012 the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AbstractContextManager
from typing import Any, cast
from urllib.parse import unquote

from cove.runtime.endpoint import AgentEndpoint
from cove.server.agentclient import CONNECT_TIMEOUT
from cove.server.auth import KeyRing
from cove.server.dashboard.sessions import SessionBook, request_owner
from cove.server.preview.address import Address
from cove.server.preview.front import Previews
from cove.server.preview.upstream import request_head as preview_request_head
from cove.server.sandboxes import SandboxService
from cove.server.wsagent import HIGH_WATER, AgentSide, TunnelSide, close_frame
from cove.wire import http1
from cove.wire.errors import SOURCE_API, BadRequest, CoveError, to_envelope
from cove.wire.websocket import accept_key

log = logging.getLogger("cove.server")

PREFIX = "/toolbox/"
# Request headers the agent gets (it needs no auth: its socket is private).
FORWARD = ("sec-websocket-protocol", "content-type", "accept", "x-daytona-sdk-version")
LINGER = 2.0  # seconds a closing client may still send (see `ToolboxFront._linger`)


def uvicorn_ws_protocol(
    keys: KeyRing,
    service: SandboxService,
    previews: Previews | None = None,
    sessions: SessionBook | None = None,
) -> type[asyncio.Protocol]:
    """The class to give uvicorn as `ws=`: this front, bound to one control plane."""
    fallback = _uvicorn_default()

    class BoundFront(ToolboxFront):
        pass

    BoundFront.keys, BoundFront.service, BoundFront.fallback = keys, service, fallback
    BoundFront.previews, BoundFront.sessions = previews, sessions
    return BoundFront


def _uvicorn_default() -> type[asyncio.Protocol]:
    """uvicorn's sans-I/O websockets protocol when it has it (fewer threads), else the classic."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol as sansio,
        )
    except ImportError:
        from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

        return WebSocketProtocol
    return sansio


class ToolboxFront(asyncio.Protocol):
    """The client's side of one upgraded connection (see the module docstring)."""

    keys: KeyRing
    service: SandboxService
    fallback: type[asyncio.Protocol]
    previews: Previews | None = None
    sessions: SessionBook | None = None  # the dashboard's terminal comes with a cookie

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        self._uvicorn = (config, server_state, app_state)
        self.connections: set[Any] = server_state.connections
        self.inner: Any = None  # uvicorn's own protocol, for paths that are not the toolbox
        self.client: asyncio.Transport | None = None
        self.agent: AgentSide | None = None
        self.relaying = False  # the 101 went out: bytes flow both ways
        self.ended = False  # the client's side is closing (see `end`)
        self.pending = bytearray()  # client bytes that arrived before the 101
        self.path = ""
        self.owner = ""
        self.sid = ""
        self.held: AbstractContextManager[None] | None = None  # an open preview: activity

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports are not asyncio's classes.
        self.client = cast(asyncio.Transport, transport)
        self.client.set_write_buffer_limits(high=HIGH_WATER)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
        elif self.ended:
            return  # lingering: the client's last bytes (its close frame) go nowhere
        elif self.relaying:
            assert self.agent is not None
            self.agent.send(data)
        elif self.path:
            self.pending += data  # the agent has not answered yet
        else:
            self._upgrade(data)  # uvicorn passes the whole request head in one call

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        return None  # close our side; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)
            return
        self.connections.discard(self)
        if self.agent is not None:
            self.agent.close()
        if self.held is not None:
            self.held.__exit__(None, None, None)
            self.held = None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()
        elif self.agent is not None:
            self.agent.pause_reading()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
        elif self.agent is not None:
            self.agent.resume_reading()

    def shutdown(self) -> None:
        """uvicorn calls this on every open connection when it stops."""
        if self.inner is not None:
            self.inner.shutdown()
        else:
            self.end(1012, "server restarting")

    # -- the upgrade --------------------------------------------------------

    def _upgrade(self, head: bytes) -> None:
        try:
            parsed = http1.parse_request(head)
        except http1.HeadError:  # uvicorn answers a malformed request as it always does
            self._hand_to_uvicorn(head)
            return
        if self.previews is not None:
            try:
                addr = self.previews.locate(parsed.headers.get("host", ""), parsed.target)
            except CoveError as err:  # a preview path with a bad port
                self.path = parsed.path
                self.refuse(err)
                return
            if addr is not None:
                self._preview(parsed, addr)
                return
        path, _, query = parsed.target.partition("?")
        sid, slash, rest = path[len(PREFIX) :].partition("/")
        if not path.startswith(PREFIX) or not sid or not slash:
            self._hand_to_uvicorn(head)
            return
        headers = parsed.headers
        self.path = unquote(path)
        assert self.client is not None
        self.client.pause_reading()  # until the agent has answered
        try:
            self.owner = request_owner(
                self.keys, self.sessions, headers, "GET", websocket=True, query=query
            )
            if not headers.get("sec-websocket-key") or headers.get("sec-websocket-version") != "13":
                raise BadRequest("a WebSocket upgrade needs Sec-WebSocket-Key and version 13")
            self.sid = unquote(sid)
            endpoint = self.service.agent_endpoint(self.owner, self.sid)
        except CoveError as err:
            self.refuse(err)
            return
        # The rest of the path exactly as the client encoded it (never decoded and re-encoded).
        agent_target = f"/{rest}?{query}" if query else f"/{rest}"
        fields = [
            ("Host", "agent"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", headers.get("sec-websocket-key", "")),
            ("Sec-WebSocket-Version", "13"),
        ]
        fields += [(k, headers[k]) for k in FORWARD if k in headers]
        self.agent = AgentSide(self, headers.get("sec-websocket-key", ""))
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            self._connect(endpoint, http1.request_head("GET", agent_target, fields))
        )
        task.add_done_callback(_log_failure)

    def _preview(self, parsed: http1.RequestHead, addr: Address) -> None:
        """A WebSocket to a sandbox port: through the agent's tunnel, the app answers it."""
        assert self.client is not None and self.previews is not None
        headers = parsed.headers
        self.path = unquote(parsed.path)
        self.client.pause_reading()
        try:
            if not headers.get("sec-websocket-key") or headers.get("sec-websocket-version") != "13":
                raise BadRequest("a WebSocket upgrade needs Sec-WebSocket-Key and version 13")
            grant, socket = self.previews.open(addr, headers)
        except CoveError as err:
            self.refuse(err)
            return
        self.owner, self.sid = grant.record.owner, grant.record.id
        self.held = self.service.connection_open(self.sid)
        self.held.__enter__()
        peer = self.client.get_extra_info("peername") or ("",)
        upgrade = preview_request_head(
            "GET", grant.target, list(headers.items()),
            prefix=addr.prefix, client=str(peer[0]), scheme="http", websocket=True,
        )  # fmt: skip
        self.agent = TunnelSide(self, headers.get("sec-websocket-key", ""))
        task = asyncio.get_running_loop().create_task(
            self._connect(socket, http1.tunnel_request(grant.port) + upgrade)
        )
        task.add_done_callback(_log_failure)

    def _hand_to_uvicorn(self, head: bytes) -> None:
        assert self.client is not None
        self.connections.discard(self)
        self.inner = self.fallback(*self._uvicorn)  # type: ignore[call-arg]
        self.inner.connection_made(self.client)
        self.inner.data_received(head)

    async def _connect(self, endpoint: AgentEndpoint, request: bytes) -> None:
        agent = self.agent
        assert agent is not None
        loop = asyncio.get_running_loop()
        try:
            sock = await asyncio.wait_for(endpoint.connect(), CONNECT_TIMEOUT)
            await loop.create_connection(lambda: agent, sock=sock)
        except (OSError, TimeoutError):
            self.refuse(await self.service.why_unreachable(self.owner, self.sid))
            return
        if self.client is None or self.client.is_closing():
            agent.close()
            return
        agent.send(request)

    def accepted(self, subprotocol: str | None, extensions: str | None = None) -> None:
        """The agent (or a preview's app) took the upgrade: answer the client, then relay."""
        assert self.client is not None and self.agent is not None
        key = self.agent.client_key
        self.client.write(http1.upgrade_accepted(accept_key(key), subprotocol, extensions))
        self.relaying = True
        if self.pending:
            self.agent.send(bytes(self.pending))
            self.pending.clear()
        self.client.resume_reading()

    def refuse(self, err: CoveError) -> None:
        body = json.dumps(to_envelope(err, self.path, SOURCE_API)).encode()
        self.send_refusal(err.status, body, "application/json")

    def send_refusal(self, status: int, body: bytes, content_type: str) -> None:
        if self.client is not None and not self.client.is_closing():
            self.client.write(http1.response(status, body, content_type, close=True))
            self.client.close()
        if self.agent is not None:
            self.agent.close()

    def end(self, code: int, reason: str) -> None:
        """Close the client's side, with a close frame if one fits between frames."""
        client = self.client
        if client is None or client.is_closing():
            return
        if not self.relaying:
            self.refuse(self.service.explain_unreachable(self.owner, self.sid))
            return
        if self.ended:
            return
        self.ended = True
        edges = self.agent.edges if self.agent is not None else None
        if edges is not None and edges.between_frames and not edges.saw_close:
            client.write(close_frame(code, reason))
        if self.agent is not None:
            self.agent.close()
        self._linger(client)

    @staticmethod
    def _linger(client: asyncio.Transport) -> None:
        """Half-close, and read what the client still sends for a while before closing.

        Closing a TCP socket with unread input resets the connection, and the
        client would lose the close frame just written: one still sending an
        oversized message, say, when the agent refused it with 1009.
        """
        if not client.can_write_eof():
            client.close()
            return
        client.write_eof()
        asyncio.get_running_loop().call_later(LINGER, client.close)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("toolbox WebSocket relay failed", exc_info=task.exception())
