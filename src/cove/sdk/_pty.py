"""PTY sessions without I/O: the requests (`PtyCalls`) and the stream's meaning
(`PtyStream`), shared by the sync and async handles in `pty.py` (wire page §4.4).

The WebSocket carries terminal bytes both ways. The server's JSON text frames
of type "control" say `connected`, `exited` (with `exitCode`) or `error`; the
close frame ends the stream, 1000 after an exit, 4000 + an HTTP status after
an error (e.g. 4409: the id is taken). Resize, kill, list and info are REST.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from cove.sdk._base import Call, Toolbox, seg, wire_body
from cove.sdk.models import PtyResult, PtySessionInfo, PtySize
from cove.wire.errors import CoveError, from_envelope
from cove.wire.protocol import PtyResizeRequest, PtySessionList

# Offered on connect so the server sends the "exited" control frame.
EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
# Envs travel as a subprotocol token: base64url (no padding) of their JSON.
ENVS_TOKEN = "X-Daytona-Pty-Envs~"
CONNECT_TIMEOUT = 10.0  # seconds until the "connected" frame, as Daytona's SDK
NORMAL_CLOSES = (None, 1000, 1005)
PTY = "/process/pty"


class PtyCalls:
    """Every PTY request of one sandbox, for both faces."""

    def __init__(self, toolbox: Toolbox) -> None:
        self.tb = toolbox

    def create_url(self, pty_id: str, cwd: str | None, size: PtySize | None) -> str:
        query: dict[str, str] = {"id": pty_id}
        query["cols"], query["rows"] = (str(size.cols), str(size.rows)) if size else ("80", "24")
        if cwd:
            query["cwd"] = cwd
        return self.tb.url(f"{PTY}/create-connect?{urlencode(query)}")

    def connect_url(self, pty_id: str) -> str:
        return self.tb.url(f"{PTY}/{seg(pty_id)}/connect")

    @staticmethod
    def subprotocols(envs: dict[str, str] | None) -> list[str]:
        offer = [EXIT_CONTROL]
        if envs:
            token = base64.urlsafe_b64encode(json.dumps(envs).encode()).decode().rstrip("=")
            offer.append(ENVS_TOKEN + token)
        return offer

    def list(self) -> Call[list[PtySessionInfo]]:
        def parse(data: Any) -> list[PtySessionInfo]:
            return PtySessionList.from_wire(data, "PTY session list").sessions

        return self.tb.call("GET", PTY, "list PTY sessions", parse)

    def info(self, pty_id: str) -> Call[PtySessionInfo]:
        path = f"{PTY}/{seg(pty_id)}"
        return self.tb.call("GET", path, "get PTY session", PtySessionInfo.from_wire)

    def resize(self, pty_id: str, size: PtySize) -> Call[PtySessionInfo]:
        path, body = f"{PTY}/{seg(pty_id)}/resize", PtyResizeRequest(size.cols, size.rows)
        return self.tb.call(
            "POST", path, "resize PTY session", PtySessionInfo.from_wire, wire_body(body)
        )

    def kill(self, pty_id: str) -> Call[None]:
        return self.tb.void("DELETE", f"{PTY}/{seg(pty_id)}", "kill PTY session")


class PtyStream:
    """Frames in, terminal output out; remembers connected, exit code and error."""

    def __init__(self, pty_id: str) -> None:
        self.pty_id = pty_id
        self.connected = False  # the server said "connected" (or already "exited")
        self.ended = False  # the socket is closed
        self.exit_code: int | None = None
        self.error: str | None = None
        self._close_code: int | None = None
        self._detached = False  # we closed it: the shell may still run

    def detach(self) -> None:
        self._detached = True

    def feed(self, frame: str | bytes) -> bytes:
        """The terminal output in `frame` (b"" for a control frame)."""
        if isinstance(frame, bytes):
            return frame
        control = _control(frame)
        if control is None:  # text that is not ours is output too, as in Daytona's SDK
            return frame.encode()
        status = control.get("status")
        if status == "connected":
            self.connected = True
        elif status == "exited":
            self.connected = True  # a shell that exits at once may skip "connected"
            code = control.get("exitCode")
            self.exit_code = code if isinstance(code, int) else 0
            if isinstance(control.get("exitReason"), str):
                self.error = control["exitReason"]
        elif status == "error":
            self.error = str(control.get("error") or "unknown error")
        return b""

    def closed(self, code: int | None, reason: str | None) -> None:
        """The socket closed with `code`; its reason may carry the exit as JSON."""
        self.ended, self._close_code = True, code
        info = _json_object(reason or "")
        if info is not None and isinstance(info.get("exitCode"), int):
            self.exit_code = info["exitCode"]
        if info is not None and isinstance(info.get("error"), str):
            self.error = info["error"]
        if self.exit_code is not None or self._detached:
            return
        if code in NORMAL_CLOSES:
            self.exit_code = 0
        elif self.error is None:
            self.error = f"the connection closed ({code}: {reason or 'no reason'})"

    def result(self) -> PtyResult:
        return PtyResult(self.exit_code, self.error)

    def connect_error(self, what: str) -> CoveError:
        """Why the PTY never connected: the error class its close code names (4000 + status)."""
        message = self.error or "the connection closed before the PTY connected"
        code = self._close_code or 0
        status = code - 4000 if 4400 <= code < 4600 else 502
        return from_envelope(status, {"message": f"{what} {self.pty_id!r} failed: {message}"})


def _control(text: str) -> dict[str, Any] | None:
    msg = _json_object(text)
    return msg if msg is not None and msg.get("type") == "control" else None


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
