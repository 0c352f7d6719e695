"""An interactive PTY on a sandbox (wire page §4.4), for `cove shell`.

The WebSocket carries terminal bytes both ways; JSON text frames of type
"control" say connected / exited / error. Resize and kill are REST calls.
Sync only: the CLI is its one user, and a terminal relay is a blocking loop.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from cove.sdk._base import seg
from cove.wire.errors import CoveError, Timeout

if TYPE_CHECKING:
    from cove.sdk.sandbox import Sandbox

EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
CONNECT_TIMEOUT = 10.0


@dataclass
class PtyEvent:
    """Terminal output (`data`), or the end (`exit_code` set), or a failure (`error`)."""

    data: bytes = b""
    exit_code: int | None = None
    error: str | None = None


class PtySession:
    def __init__(
        self,
        sandbox: Sandbox,
        cols: int = 80,
        rows: int = 24,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        pty_id: str | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.id = pty_id or f"cove-shell-{uuid.uuid4().hex[:8]}"
        query = {"id": self.id, "cols": cols, "rows": rows}
        if cwd:
            query["cwd"] = cwd
        protocols = [EXIT_CONTROL]
        if envs:
            token = base64.urlsafe_b64encode(json.dumps(envs).encode()).decode().rstrip("=")
            protocols.append(f"X-Daytona-Pty-Envs~{token}")
        url = sandbox._toolbox.url(f"/process/pty/create-connect?{urlencode(query)}")
        self.ws: ClientConnection = sandbox._t.websocket(url, "open shell", protocols)
        self._wait_connected()

    def _wait_connected(self) -> None:
        try:
            while True:
                frame = self.ws.recv(timeout=CONNECT_TIMEOUT)
                event = self._control(frame)
                if event is not None and event.error:
                    raise CoveError(f"open shell failed: {event.error}")
                if isinstance(frame, str) and '"connected"' in frame:
                    return
        except TimeoutError:
            self.ws.close()
            raise Timeout("open shell failed: the PTY did not connect in time") from None

    @staticmethod
    def _control(frame: str | bytes) -> PtyEvent | None:
        if not isinstance(frame, str):
            return None
        try:
            msg = json.loads(frame)
        except ValueError:
            return None
        if not isinstance(msg, dict) or msg.get("type") != "control":
            return None
        if msg.get("status") == "exited":
            return PtyEvent(exit_code=int(msg.get("exitCode") or 0))
        if msg.get("status") == "error":
            return PtyEvent(error=str(msg.get("error", "unknown error")))
        return PtyEvent()

    def events(self) -> PtyEvent:
        """The next output chunk or the end; blocks."""
        try:
            frame = self.ws.recv()
        except ConnectionClosed:
            code = self.ws.close_code
            if code in (1000, 1005, None):
                return PtyEvent(exit_code=0)
            return PtyEvent(error=f"connection closed ({code}: {self.ws.close_reason})")
        control = self._control(frame)
        if control is not None:
            return control
        return PtyEvent(data=frame if isinstance(frame, bytes) else frame.encode())

    def send(self, data: bytes) -> None:
        self.ws.send(data)

    def resize(self, cols: int, rows: int) -> None:
        body = {"cols": cols, "rows": rows}
        path = f"/process/pty/{seg(self.id)}/resize"
        call = self.sandbox._toolbox.void("POST", path, "resize shell", json=body)
        self.sandbox._t.call(call)

    def kill(self) -> None:
        call = self.sandbox._toolbox.void("DELETE", f"/process/pty/{seg(self.id)}", "kill shell")
        self.sandbox._t.call(call)

    def close(self) -> None:
        self.ws.close()
