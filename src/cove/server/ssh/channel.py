"""What both bridges share: the agent they talk to and the SSH channel they feed.

`AgentLink` is one sandbox's agent as the SSH server sees it: JSON requests
over the keep-alive pool, WebSockets opened on demand. `Outlet` is the SSH
process's side: output written with flow control, input queued in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncssh

from cove.runtime.endpoint import AgentEndpoint
from cove.server import agentws
from cove.server.agentclient import AgentConnectionPool, AgentUnreachable
from cove.wire.errors import CoveError, from_envelope
from cove.wire.websocket import WebSocket

log = logging.getLogger("cove.server")
INPUT_QUEUE = 64  # input pieces waiting for the agent before the channel stops being read


class AgentLink:
    def __init__(self, socket: AgentEndpoint, pool: AgentConnectionPool) -> None:
        self.socket = socket
        self.pool = pool

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One JSON request; an error answer raises the CoveError it carries."""
        payload = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json"} if body is not None else {}
        resp = await self.pool.request(method, path, headers, payload)
        try:
            parsed = json.loads(resp.body) if resp.body else None
        except ValueError:
            parsed = None
        if resp.status >= 400:
            raise from_envelope(resp.status, parsed, resp.body.decode("utf-8", "replace")[:200])
        return parsed

    async def websocket(
        self, path: str, query: dict[str, str] | None = None, protocols: tuple[str, ...] = ()
    ) -> WebSocket:
        return await agentws.connect(self.socket, path, query, protocols)

    async def call_quietly(self, method: str, path: str) -> None:
        """A clean-up request whose failure changes nothing (the agent may be gone)."""
        try:
            await self.call(method, path)
        except (AgentUnreachable, CoveError) as exc:
            log.debug("ssh clean-up %s %s: %s", method, path, exc)


class Outlet:
    """The SSH side of a bridge: the process's output streams and its queued input.

    Writes wait for the client's window (`drain`), so a fast command cannot
    fill the server's memory; input waits in a short queue, and while it is
    full the channel is not read, so a fast sender is held back by SSH's own
    flow control.
    """

    EOF = None

    def __init__(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        self.process = process
        self.input: asyncio.Queue[bytes | None] = asyncio.Queue(INPUT_QUEUE)

    async def write(self, data: bytes, *, stderr: bool = False) -> None:
        stream = self.process.stderr if stderr else self.process.stdout
        if self.process.channel.is_closing():
            return
        stream.write(data)
        await stream.drain()

    async def next_input(self) -> bytes | None:
        return await self.input.get()
