"""One PTY session: its shell (a `PtyChild`), the scrollback, and the clients attached."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from cove.agent.core import Agent
from cove.agent.proc.spawn import SpawnSpec
from cove.agent.proc.terminal import PtyChild
from cove.wire.protocol.sessions import PtyCreateRequest, PtySessionInfo
from cove.wire.websocket import ConnectionClosed, WebSocket

SCROLLBACK = 64 * 1024
# A client this many output chunks behind is dropped rather than slowing the others.
CLIENT_BACKLOG = 4096


def control(**fields: object) -> str:
    return json.dumps({"type": "control", **fields})


class PtySession:
    def __init__(self, agent: Agent, req: PtyCreateRequest, cwd: str) -> None:
        self.agent = agent
        self.req = req
        self.cwd = cwd
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.child: PtyChild | None = None
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.scrollback = bytearray()
        self.exit_code: int | None = None
        self.ended = asyncio.Event()

    def info(self) -> PtySessionInfo:
        return PtySessionInfo(
            self.req.id,
            self.child is not None and self.exit_code is None,
            self.req.cols,
            self.req.rows,
            self.created_at,
            self.cwd,
            self.req.envs,
            self.req.lazy_start,
        )

    def start(self) -> None:
        env = self.agent.child_env({"TERM": "xterm-256color", **self.req.envs})
        command = self.req.command
        argv = [self.agent.shell, "-c", command] if command else [self.agent.shell, "-i"]
        spec = SpawnSpec(argv, self.cwd, env)
        group = self.agent.new_group("pty")
        self.child = self.agent.spawner.spawn_pty(
            spec, group, self.req.cols, self.req.rows, self._output
        )

    def _output(self, data: bytes) -> None:
        self.scrollback += data
        del self.scrollback[:-SCROLLBACK]
        for queue in list(self.clients):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:  # too slow: drop this client, not the others' output
                self.clients.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    async def run(self) -> None:
        """Wait for the shell to end, then tell every client and let go of the terminal."""
        assert self.child is not None
        self.exit_code = await self.child.exited
        await self.child.drain()
        self.child.kill()  # whatever it left in the background
        self.agent.release_group(self.child.group)
        self.ended.set()
        for queue in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def terminate(self) -> None:
        """End the shell and everything it started: SIGTERM, a grace period, SIGKILL."""
        if self.child is not None and not self.ended.is_set():
            await self.child.terminate()

    def resize(self, cols: int, rows: int) -> None:
        self.req.cols, self.req.rows = cols, rows
        if self.child is not None and not self.ended.is_set():
            self.child.terminal.resize(cols, rows)

    async def write(self, data: bytes) -> None:
        if self.child is None or self.ended.is_set():
            return
        await self.child.terminal.write(data)

    async def attach(self, ws: WebSocket) -> None:
        await ws.send_text(control(status="connected"))
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_BACKLOG)
        if self.scrollback:
            queue.put_nowait(bytes(self.scrollback))
        if self.ended.is_set():
            queue.put_nowait(None)
        else:
            self.clients.add(queue)

        async def send() -> None:
            while (data := await queue.get()) is not None:
                await ws.send_bytes(data)
            if self.exit_code is not None:
                await ws.send_text(control(status="exited", exitCode=self.exit_code))

        async def receive() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.write((await ws.recv()).data)

        tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.clients.discard(queue)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
