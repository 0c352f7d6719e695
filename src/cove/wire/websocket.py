"""A minimal RFC 6455 WebSocket over asyncio streams.

Used on both ends of the server↔agent hop (the agent serves, the server's
proxy connects over the agent's unix socket). Standard library only, because
the agent runs it inside every sandbox. Client-facing WebSockets are served
by uvicorn, not by this module.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A whole message, however fragmented. Client frames reach the agent verbatim
# (the control plane relays bytes), so this bounds what one client can make a
# sandbox's agent hold: uvicorn's default, which bounded it before the relay.
MAX_MESSAGE = 16 * 1024 * 1024
# Frames with a smaller payload are sent as one joined write.
COPY_BELOW = 16 * 1024

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    # Imported here: hashlib loads OpenSSL, which the agent otherwise never needs
    # at start (it handshakes once per WebSocket; every sandbox starts).
    import hashlib

    return binascii.b2a_base64(hashlib.sha1(key.encode() + GUID).digest(), newline=False).decode()


def new_key() -> str:
    return binascii.b2a_base64(os.urandom(16), newline=False).decode()


def frame_head(opcode: int, n: int, *, mask: bool) -> bytes:
    """A frame's header (without the masking key) for an `n`-byte payload."""
    mask_bit = 0x80 if mask else 0
    if n < 126:
        return bytes((0x80 | opcode, mask_bit | n))
    if n < 1 << 16:
        return bytes((0x80 | opcode, mask_bit | 126)) + n.to_bytes(2, "big")
    return bytes((0x80 | opcode, mask_bit | 127)) + n.to_bytes(8, "big")


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    head = frame_head(opcode, len(payload), mask=mask)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _xor(payload, key)


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code, then the reason cut to fit a control frame."""
    return struct.pack("!H", code) + reason.encode()[:120]


def _xor(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    # int-wide XOR is ~100x faster than a per-byte loop in pure Python.
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    n = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return n.to_bytes(len(data), "little")


class ConnectionClosed(Exception):
    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


@dataclass
class Message:
    is_text: bool
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class WebSocket:
    """One side of an open WebSocket. `recv` raises ConnectionClosed at the end."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, client: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._mask = client  # clients mask what they send (RFC 6455 §5.3)
        self._send_lock = asyncio.Lock()
        self.close_code: int | None = None
        self.close_reason = ""
        self._close_sent = False

    async def _read_head(self) -> tuple[int, int, bool]:
        """A frame's opcode, payload length and whether it is masked (its key not read)."""
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0, n, bool(b1 & 0x80)

    async def _read_frame(self, room: int) -> tuple[bool, int, bytes]:
        b0, n, masked = await self._read_head()
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if n > room:
            await self.close(1009, "message too big")
            await self._drain_to_close(n + (4 if masked else 0))
            raise ConnectionClosed(1009, "message too big")
        key = await self.reader.readexactly(4) if masked else b""
        payload = await self.reader.readexactly(n)
        return fin, opcode, _xor(payload, key) if key else payload

    async def _drain_to_close(self, skip: int, within: float = 2.0) -> None:
        """After our close frame: discard what the peer still sends, up to its close frame.

        Closing the socket with unread input would reset the connection, and
        the peer, still sending (an oversized message), would never read our
        close frame and its reason.
        """

        async def drain(left: int) -> None:
            while True:
                while left:
                    chunk = await self.reader.read(min(left, 1 << 20))
                    if not chunk:
                        return
                    left -= len(chunk)
                b0, n, masked = await self._read_head()
                left = n + (4 if masked else 0)
                if b0 & 0x0F == OP_CLOSE:
                    await self.reader.readexactly(left)
                    return

        with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
            await asyncio.wait_for(drain(skip), within)

    async def recv(self) -> Message:
        parts: list[bytes] = []
        size = 0  # of `parts`
        first_op = None
        try:
            while True:
                fin, opcode, payload = await self._read_frame(MAX_MESSAGE - size)
                if opcode == OP_PING:
                    await self._send(OP_PONG, payload)
                    continue
                if opcode == OP_PONG:
                    continue
                if opcode == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    self.close_code, self.close_reason = (
                        code,
                        payload[2:].decode("utf-8", "replace"),
                    )
                    if not self._close_sent:
                        await self.close(1000 if code == 1005 else code)
                    raise ConnectionClosed(code, self.close_reason)
                if first_op is None:
                    first_op = opcode
                parts.append(payload)
                size += len(payload)
                if fin:
                    return Message(first_op == OP_TEXT, b"".join(parts))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ConnectionClosed(1006, "connection lost") from exc

    async def _send(self, opcode: int, payload: bytes) -> None:
        await self._send_parts(opcode, (payload,))

    async def _send_parts(self, opcode: int, parts: Sequence[bytes]) -> None:
        size = sum(len(p) for p in parts)
        async with self._send_lock:
            if self._mask or size < COPY_BELOW:
                # One write: joining a small payload costs less than a second syscall.
                self.writer.write(encode_frame(opcode, b"".join(parts), mask=self._mask))
            else:
                # Large payloads go to the transport as they are, never joined or copied here.
                self.writer.write(frame_head(opcode, size, mask=False))
                for part in parts:
                    self.writer.write(part)
            await self.writer.drain()

    async def send_text(self, text: str) -> None:
        await self._send(OP_TEXT, text.encode())

    async def send_bytes(self, data: bytes) -> None:
        await self._send(OP_BINARY, data)

    async def send_parts(self, parts: Sequence[bytes]) -> None:
        """One binary message made of `parts` in order (saves joining large payloads)."""
        await self._send_parts(OP_BINARY, parts)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._close_sent:
            return
        self._close_sent = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._send(OP_CLOSE, close_payload(code, reason))

    def abort(self) -> None:
        self.writer.close()
