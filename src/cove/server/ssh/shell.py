"""An interactive shell: the SSH channel bridged to a PTY session of the agent.

The agent's PTY API (`agent/pty`, the one the official SDK's
`create_pty_session` uses) runs the sandbox's shell on a terminal of the
client's size; window changes become its resize call. Output goes to the
channel as it comes, input to the WebSocket in order. When the shell exits,
its exit code is the SSH exit status; when the client leaves first, the PTY
is killed (the shell and everything it started).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from typing import Any

from cove.server.ssh.channel import AgentLink, Outlet
from cove.wire.errors import CoveError
from cove.wire.websocket import ConnectionClosed, WebSocket

EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
FAILED = 255  # ssh's own status for "it did not run to an end"
ENVS_TOKEN = "X-Daytona-Pty-Envs~"


def envs_protocol(envs: dict[str, str]) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(envs).encode()).decode().rstrip("=")
    return ENVS_TOKEN + raw


def term_size(cols: int, rows: int) -> tuple[int, int]:
    """Within the agent's bounds; SSH sends 0 for a size the client does not know."""
    return max(1, min(1000, cols or 80)), max(1, min(1000, rows or 24))


class PtyShell:
    def __init__(
        self, agent: AgentLink, out: Outlet, term: str, cols: int, rows: int, command: str | None
    ) -> None:
        self.agent = agent
        self.command = command  # None: the interactive shell
        self.out = out
        self.term = term or "xterm-256color"
        self.size = term_size(cols, rows)
        self.id = "ssh-" + secrets.token_hex(8)
        self._connected = False
        self._resizes: set[asyncio.Task[None]] = set()

    def resize(self, cols: int, rows: int) -> None:
        self.size = term_size(cols, rows)
        if self._connected:
            task = asyncio.create_task(self._resize(*self.size))
            self._resizes.add(task)
            task.add_done_callback(self._resizes.discard)

    async def _resize(self, cols: int, rows: int) -> None:
        try:
            size = {"cols": cols, "rows": rows}
            await self.agent.call("POST", f"/process/pty/{self.id}/resize", size)
        except CoveError as err:  # the shell ended meanwhile: nothing to resize
            if err.status != 404:
                raise

    async def run(self) -> int:
        cols, rows = self.size
        query = {"id": self.id, "cols": str(cols), "rows": str(rows)}
        if self.command is not None:
            query["command"] = self.command
        ws = await self.agent.websocket(
            "/process/pty/create-connect", query, (EXIT_CONTROL, envs_protocol({"TERM": self.term}))
        )
        sender = asyncio.create_task(self._send_input(ws))
        try:
            return await self._receive(ws, (cols, rows))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            ws.abort()
            await self.agent.call_quietly("DELETE", f"/process/pty/{self.id}")

    async def _receive(self, ws: WebSocket, created: tuple[int, int]) -> int:
        code: int | None = None
        try:
            while True:
                msg = await ws.recv()
                if not msg.is_text:
                    await self.out.write(msg.data)
                    continue
                control = _control(msg.text)
                if control is None:
                    await self.out.write(msg.data)
                elif control.get("status") == "connected":
                    self._connected = True
                    if self.size != created:  # the window changed while the PTY started
                        self.resize(*self.size)
                elif control.get("status") == "exited":
                    code = int(control.get("exitCode") or 0)
                elif control.get("status") == "error":
                    await self.out.write(f"cove: {control.get('error')}\r\n".encode(), stderr=True)
                    code = FAILED
        except ConnectionClosed as closed:
            if code is not None:
                return code
            if closed.code == 1000:
                return 0  # a normal close with no exit information: the SDK reads 0 too
            message = f"cove: the sandbox's terminal went away ({closed.code} {closed.reason})"
            await self.out.write(message.encode() + b"\r\n", stderr=True)
            return FAILED

    async def _send_input(self, ws: WebSocket) -> None:
        # A socket that broke ends the output side too, which reports it.
        with contextlib.suppress(ConnectionError):
            while (data := await self.out.next_input()) is not None:
                await ws.send_bytes(data)
        # EOF on a terminal is the user's ^D: the shell decides what it means.


def _control(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if isinstance(parsed, dict) and parsed.get("type") == "control":
        return parsed
    return None
