"""`ssh HOST 'command'`: a command run in a session of the agent, without a terminal.

The command runs as an async session command (`agent/sessions`) in a session
of its own: its stdout and stderr come back apart through the log follow
stream (every frame starts with a 3-byte stream marker) and go to the
channel's stdout and stderr; the client's input goes to the command's stdin,
and the client's EOF closes it. When the stream ends, the command's exit
code is the SSH exit status. Deleting the session at the end ends whatever
the command left running. Input travels as JSON text: bytes that are not
UTF-8 arrive replaced (U+FFFD), so binary stdin is not carried exactly.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import secrets

from cove.server.agentclient import AgentUnreachable
from cove.server.ssh.channel import AgentLink, Outlet
from cove.wire.errors import CoveError
from cove.wire.websocket import ConnectionClosed, WebSocket

log = logging.getLogger("cove.server")

STDOUT, STDERR = b"\x01\x01\x01", b"\x02\x02\x02"


class SessionCommand:
    def __init__(self, agent: AgentLink, out: Outlet, command: str) -> None:
        self.agent = agent
        self.out = out
        self.command = command
        self.session = "ssh-" + secrets.token_hex(8)

    async def run(self) -> int:
        base = f"/process/session/{self.session}"
        await self.agent.call("POST", "/process/session", {"sessionId": self.session})
        try:
            started = await self.agent.call(
                "POST",
                f"{base}/exec",
                {"command": self.command, "runAsync": True, "suppressInputEcho": True},
            )
            cmd = f"{base}/command/{started['cmdId']}"
            ws = await self.agent.websocket(f"{cmd}/logs", {"follow": "true"})
            sender = asyncio.create_task(self._send_input(cmd))
            try:
                await self._relay(ws)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
                ws.abort()
            info = await self.agent.call("GET", cmd)
            code = info.get("exitCode")
            return int(code) if code is not None else 255
        finally:
            await self.agent.call_quietly("DELETE", base)

    async def _relay(self, ws: WebSocket) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                data = (await ws.recv()).data
                marker, payload = data[:3], data[3:]
                if payload:
                    await self.out.write(payload, stderr=marker == STDERR)

    async def _send_input(self, cmd: str) -> None:
        try:
            await self._pump_input(cmd)
        except CoveError as err:  # 410: the command ended and takes no more input
            if err.status != 410:
                log.info("ssh input to %s: %s", cmd, err.message)
        except AgentUnreachable as exc:  # the output side sees it too, and reports it
            log.info("ssh input to %s: %s", cmd, exc)

    async def _pump_input(self, cmd: str) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while (data := await self.out.next_input()) is not None:
            text = decoder.decode(data)
            if text:
                await self.agent.call("POST", f"{cmd}/input", {"data": text, "raw": True})
        if tail := decoder.decode(b"", final=True):
            await self.agent.call("POST", f"{cmd}/input", {"data": tail, "raw": True})
        await self.agent.call("POST", f"{cmd}/stdin/close", {})
