"""The agent's side of a relayed toolbox WebSocket (see `wsfront` for the whole relay).

Until the agent has answered the upgrade, its bytes are a HTTP/1.1 head: a
101 hands the connection to byte relaying, anything else becomes the
client's refusal. Once relaying, frame boundaries are tracked from the
headers alone (payloads skipped by length), so that the front can tell
whether a close frame of its own fits between two of the agent's frames.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, cast

from cove.wire import http1
from cove.wire.errors import InternalError
from cove.wire.websocket import OP_CLOSE, close_payload, encode_frame

if TYPE_CHECKING:
    from cove.server.wsfront import ToolboxFront

MAX_HEAD = 16 * 1024  # the agent's answer head; anything larger is not an agent
MAX_REFUSAL_BODY = 1024 * 1024
# Send buffers: large enough that a log stream moves in big writes, small
# enough that a stalled client holds little of the server's memory.
HIGH_WATER = 4 * 1024 * 1024


class FrameEdges:
    """Where frames begin in a WebSocket byte stream, reading headers only."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.skip = 0  # payload bytes of the current frame still to pass
        self.saw_close = False

    @property
    def between_frames(self) -> bool:
        return self.skip == 0 and not self.head

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self.skip:
                step = min(self.skip, n - i)
                self.skip -= step
                i += step
                continue
            need = self._head_size()
            take = min(need - len(self.head), n - i)
            self.head += data[i : i + take]
            i += take
            if len(self.head) < self._head_size():
                continue  # the header's length fields decide its size: read on
            if len(self.head) == self._head_size():
                self._frame_start()

    def _head_size(self) -> int:
        if len(self.head) < 2:
            return 2
        b1 = self.head[1]
        n = b1 & 0x7F
        return 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)

    def _frame_start(self) -> None:
        head = self.head
        if head[0] & 0x0F == OP_CLOSE:
            self.saw_close = True
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack_from("!H", head, 2)[0]
        elif n == 127:
            n = struct.unpack_from("!Q", head, 2)[0]
        self.skip = n
        self.head = bytearray()


def close_frame(code: int, reason: str) -> bytes:
    return encode_frame(OP_CLOSE, close_payload(code, reason), mask=False)


class AgentSide(asyncio.Protocol):
    """The agent's side of a relayed connection."""

    def __init__(self, front: ToolboxFront, client_key: str) -> None:
        self.front = front
        self.client_key = client_key
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()  # the agent's answer, until its head is complete
        self.refusal: tuple[int, str, int] | None = None  # status, content type, body length
        self.edges = FrameEdges()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        front = self.front
        if front.relaying:
            self.edges.feed(data)
            if front.client is not None and not front.client.is_closing():
                front.client.write(data)
            return
        self.head += data
        if self.refusal is not None:
            self._refused()
            return
        end = self.head.find(http1.END)
        if end < 0:
            if len(self.head) > MAX_HEAD:
                front.refuse(InternalError("the sandbox agent sent an oversized answer"))
            return
        try:
            parsed = http1.parse_status(bytes(self.head[: end + len(http1.END)]))
            status, headers = parsed.status, parsed.headers
        except http1.HeadError:
            status, headers = 502, {}
        rest = bytes(self.head[end + len(http1.END) :])
        self.head = bytearray(rest)
        if status == 101:
            self.head.clear()
            front.accepted(
                headers.get("sec-websocket-protocol"), headers.get("sec-websocket-extensions")
            )
            if rest:
                self.data_received(rest)
            return
        length = min(int(headers.get("content-length", "0") or 0), MAX_REFUSAL_BODY)
        self.refusal = (status, headers.get("content-type", "application/json"), length)
        self._refused()

    def _refused(self) -> None:
        assert self.refusal is not None
        status, content_type, length = self.refusal
        if len(self.head) >= length:
            self.front.send_refusal(status, bytes(self.head[:length]), content_type)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.front.end(1011, "sandbox agent went away")

    def pause_writing(self) -> None:
        if self.front.client is not None:
            self.front.client.pause_reading()

    def resume_writing(self) -> None:
        if self.front.client is not None and self.front.relaying:
            self.front.client.resume_reading()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class TunnelSide(AgentSide):
    """A preview's app behind the agent's tunnel: the agent's 101 for the tunnel comes
    first, then the app's own answer to the upgrade, handled as an agent's would be."""

    def __init__(self, front: ToolboxFront, client_key: str) -> None:
        super().__init__(front, client_key)
        self.through = False  # the tunnel's 101 has been read

    def data_received(self, data: bytes) -> None:
        if self.through:
            super().data_received(data)
            return
        self.head += data
        end = self.head.find(http1.END)
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self.front.refuse(InternalError("the sandbox agent sent an oversized answer"))
            return
        try:
            status = http1.parse_status(bytes(self.head[: end + len(http1.END)])).status
        except http1.HeadError:
            status = 502
        self.through = True
        if status == 101:
            rest = bytes(self.head[end + len(http1.END) :])
            self.head.clear()
            if rest:
                super().data_received(rest)
        else:  # the agent refused the tunnel (nothing listens): its answer is the refusal
            pending, self.head = bytes(self.head), bytearray()
            super().data_received(pending)
