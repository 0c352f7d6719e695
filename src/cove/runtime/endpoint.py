"""Where the control plane reaches one sandbox's agent, and how it connects.

A backend names the agent's address as an endpoint; the toolbox proxy (HTTP
pool and WebSocket relay) only ever calls `connect()` and gets a connected,
non-blocking socket to speak HTTP/1.1 on. Two kinds:

    UnixEndpoint    the agent's pinned unix socket on this host (`local`)
    RelayEndpoint   a node's authenticated TCP relay to that socket (`ray`)

The relay handshake (the node's side is `runtime/ray/relay.py`):

    relay  -> client   b"COVE-RELAY1 " + 32 hex digits of nonce + b"\\n"
    client -> relay    sandbox id + b" " + HMAC-SHA256(secret, nonce + id) in hex + b"\\n"
    relay  -> client   b"OK\\n", then the agent's bytes; or b"NO " + reason, then close

The nonce makes a recorded handshake useless later; the secret never
crosses the wire. After "OK" the connection is a byte pipe to the agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from dataclasses import dataclass, field
from typing import Protocol

GREETING = b"COVE-RELAY1 "
NONCE_BYTES = 16
GREETING_LEN = len(GREETING) + 2 * NONCE_BYTES + 1
ACCEPTED = b"OK\n"
MAX_REFUSAL = 512


class RelayRefused(ConnectionRefusedError):
    """The node's relay did not let us through (bad secret, unknown sandbox)."""


class AgentEndpoint(Protocol):
    async def connect(self) -> socket.socket:
        """A connected non-blocking socket to the agent (OSError when it cannot be had)."""
        ...


@dataclass(frozen=True)
class UnixEndpoint:
    path: str

    async def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, self.path)
        except BaseException:
            sock.close()
            raise
        return sock

    def __str__(self) -> str:
        return self.path


def relay_proof(secret: bytes, nonce: bytes, sandbox_id: str) -> str:
    return hmac.new(secret, nonce + sandbox_id.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class RelayEndpoint:
    host: str
    port: int
    sandbox_id: str
    secret: bytes = field(repr=False)

    async def connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            greeting = await _recv_exactly(loop, sock, GREETING_LEN)
            if not greeting.startswith(GREETING) or not greeting.endswith(b"\n"):
                raise RelayRefused(f"{self.host}:{self.port} is not a Cove node relay")
            nonce = bytes.fromhex(greeting[len(GREETING) : -1].decode("ascii"))
            proof = relay_proof(self.secret, nonce, self.sandbox_id)
            await loop.sock_sendall(sock, f"{self.sandbox_id} {proof}\n".encode())
            # Exactly the answer's bytes: what follows "OK" belongs to the agent.
            answer = await _recv_exactly(loop, sock, len(ACCEPTED), allow_short=True)
            if answer != ACCEPTED:
                rest = await _recv_exactly(loop, sock, MAX_REFUSAL, allow_short=True)
                reason = (answer + rest).decode(errors="replace").strip()
                raise RelayRefused(f"the node relay refused: {reason or 'connection closed'}")
        except BaseException:
            sock.close()
            raise
        return sock

    def __str__(self) -> str:
        return f"relay {self.host}:{self.port} to sandbox {self.sandbox_id}"


async def _recv_exactly(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int, *, allow_short: bool = False
) -> bytes:
    data = b""
    while len(data) < n:
        piece = await loop.sock_recv(sock, n - len(data))
        if not piece:
            if allow_short:
                break
            raise ConnectionResetError("the node relay closed the connection")
        data += piece
    return data
