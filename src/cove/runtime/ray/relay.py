"""The node's side of the toolbox relay: authenticated TCP in, the agent's unix socket out.

Runs in the node actor's event loop. Each connection proves it knows the
cluster secret for one sandbox (handshake in `runtime/endpoint.py`), then
becomes a byte pipe to that sandbox's agent socket: HTTP, WebSocket frames,
log follows and PTY bytes pass as they come, never buffered as messages.
A connection whose target is `layer:<key>` or `take:<name>` instead carries
an image layer tree to or from the node (`transfer`), under the same proof.
Each direction waits for the other side to drain before reading more, so a
slow reader slows its writer instead of filling the node's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable

from cove.runtime.endpoint import ACCEPTED, GREETING, NONCE_BYTES, relay_proof
from cove.runtime.ray import transfer
from cove.wire.errors import CoveError

log = logging.getLogger("cove.runtime.ray")

HANDSHAKE_TIMEOUT = 5.0
MAX_LINE = 256
PIECE = 256 * 1024

# sandbox id -> the agent's unix socket path; raises LookupError for an unknown
# sandbox, or a CoveError whose message is the refusal (e.g. a replaced socket).
SocketOf = Callable[[str], str]
# (kind, name, reader, writer): one transfer connection past the handshake.
Transfers = Callable[[str, str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Relay:
    def __init__(
        self, secret: bytes, socket_of: SocketOf, transfers: Transfers | None = None
    ) -> None:
        self.secret = secret
        self.socket_of = socket_of
        self.transfers = transfers
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE * 4)
        bound = self.server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            agent = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await _refuse(writer, f"handshake failed: {exc!r}")
            return
        if agent is None:
            return
        if isinstance(agent, str):
            await self._transfer(agent, reader, writer)
            return
        agent_reader, agent_writer = agent
        writer.write(ACCEPTED)
        await _pipe_both(reader, writer, agent_reader, agent_writer)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str | None:
        """The agent's socket, opened; a transfer's target (`kind:name`); None if refused."""
        nonce = os.urandom(NONCE_BYTES)
        writer.write(GREETING + nonce.hex().encode() + b"\n")
        await writer.drain()
        line = await reader.readuntil(b"\n")
        sid, _, proof = line.decode("ascii").strip().partition(" ")
        if not hmac.compare_digest(proof.encode(), relay_proof(self.secret, nonce, sid).encode()):
            await _refuse(writer, "bad proof: this control plane does not hold the cluster secret")
            return None
        if sid.partition(":")[0] in transfer.KINDS and self.transfers is not None:
            return sid
        try:
            path = self.socket_of(sid)
        except LookupError:
            await _refuse(writer, f"sandbox {sid} is not on this node")
            return None
        except CoveError as exc:  # e.g. a replaced agent socket: say so
            await _refuse(writer, exc.message)
            return None
        try:
            return await asyncio.open_unix_connection(path, limit=PIECE)
        except OSError as exc:
            await _refuse(writer, f"the agent of sandbox {sid} does not answer: {exc}")
            return None

    async def _transfer(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self.transfers is not None
        kind, _, name = target.partition(":")
        writer.write(ACCEPTED)
        try:
            await self.transfers(kind, name, reader, writer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            log.warning("relay transfer %s failed: %r", target, exc)
        except CoveError as exc:
            log.warning("relay transfer %s failed: %s", target, exc.message)
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _refuse(writer: asyncio.StreamWriter, reason: str) -> None:
    with contextlib.suppress(OSError):
        writer.write(b"NO " + reason.encode(errors="replace")[:400] + b"\n")
        await writer.drain()
    writer.close()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    agent_reader: asyncio.StreamReader,
    agent_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until both sides are done; either side's reset ends both."""
    try:
        await asyncio.gather(_pipe(reader, agent_writer), _pipe(agent_reader, writer))
    except (OSError, asyncio.IncompleteReadError):
        pass  # a reset on either side: both connections end below
    finally:
        writer.close()
        agent_writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(PIECE):
        dst.write(data)
        await dst.drain()
    if dst.can_write_eof():
        with contextlib.suppress(OSError):
            dst.write_eof()
