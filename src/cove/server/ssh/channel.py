"""What both bridges share: the agent they talk to and the SSH channel they feed.

`AgentLink` is one sandbox's agent as the SSH server sees it: JSON requests
over the keep-alive pool, WebSockets opened on demand. `Outlet` is the SSH
channel's side: writes that wait while the client's window is full (so a
fast command cannot fill the server's memory), and input queued in order,
with the channel's reading paused while too much of it waits for the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncssh

from cove.server import agentws
from cove.server.agentclient import AgentConnectionPool, AgentUnreachable
from cove.wire.errors import CoveError, from_envelope
from cove.wire.websocket import WebSocket

log = logging.getLogger("cove.server")
INPUT_HIGH_WATER = 256  # queued input pieces before the channel stops reading


class AgentLink:
    def __init__(self, socket: str, pool: AgentConnectionPool) -> None:
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
    EOF = None

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan
        self.writable = asyncio.Event()
        self.writable.set()
        self.input: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reading = True

    async def write(self, data: bytes, *, stderr: bool = False) -> None:
        if self.chan.is_closing():
            return
        if stderr:
            self.chan.write_stderr(data)
        else:
            self.chan.write(data)
        await self.writable.wait()

    def feed(self, data: bytes | None) -> None:
        self.input.put_nowait(data)
        if self._reading and self.input.qsize() >= INPUT_HIGH_WATER:
            self._reading = False
            self.chan.pause_reading()

    async def next_input(self) -> bytes | None:
        data = await self.input.get()
        if not self._reading and self.input.qsize() < INPUT_HIGH_WATER // 2:
            self._reading = True
            self.chan.resume_reading()
        return data
