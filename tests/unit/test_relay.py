"""The node relay lets through only a caller holding the cluster secret, to the one
sandbox it proved it for, and then passes bytes both ways (real sockets, no Ray)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from cove.runtime.endpoint import GREETING_LEN, RelayEndpoint, RelayRefused, relay_proof
from cove.runtime.ray.relay import Relay

SECRET = b"cluster-secret"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def run_with_relay(
    tmp_path: Path, scenario: Callable[[str, int], Coroutine[Any, Any, None]]
) -> None:
    async def main() -> None:
        path = str(tmp_path / "agent.sock")
        agent = await asyncio.start_unix_server(_echo, path)
        sockets = {"sb-1": path}

        def socket_of(sid: str) -> str:
            return sockets[sid]  # KeyError is a LookupError: "not on this node"

        relay = Relay(SECRET, socket_of)
        host, port = await relay.start("127.0.0.1", 0)
        try:
            await asyncio.wait_for(scenario(host, port), 20)
        finally:
            await relay.close()
            agent.close()

    asyncio.run(main())


async def _round_trip(endpoint: RelayEndpoint, payload: bytes) -> bytes:
    sock = await endpoint.connect()
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await reader.read()
    writer.close()
    return data


def test_the_secret_holder_reaches_the_agent_and_bytes_pass_whole(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def scenario(host: str, port: int) -> None:
        assert await _round_trip(RelayEndpoint(host, port, "sb-1", SECRET), payload) == payload

    run_with_relay(tmp_path, scenario)


def test_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    async def scenario(host: str, port: int) -> None:
        with pytest.raises(RelayRefused, match="bad proof"):
            await RelayEndpoint(host, port, "sb-1", b"guess").connect()

    run_with_relay(tmp_path, scenario)


def test_an_unknown_sandbox_is_refused(tmp_path: Path) -> None:
    async def scenario(host: str, port: int) -> None:
        with pytest.raises(RelayRefused, match="not on this node"):
            await RelayEndpoint(host, port, "sb-2", SECRET).connect()

    run_with_relay(tmp_path, scenario)


def test_a_proof_for_another_nonce_or_sandbox_is_refused(tmp_path: Path) -> None:
    """A recorded handshake is worth nothing: each connection has its own nonce."""

    async def scenario(host: str, port: int) -> None:
        stale = b"\0" * 16
        for proof_for in ((stale, "sb-1"), (None, "sb-2")):  # None: this connection's nonce
            reader, writer = await asyncio.open_connection(host, port)
            greeting = await reader.readexactly(GREETING_LEN)
            nonce = proof_for[0] or bytes.fromhex(greeting.split()[1].decode())
            writer.write(f"sb-1 {relay_proof(SECRET, nonce, proof_for[1])}\n".encode())
            answer = await reader.read()
            assert answer.startswith(b"NO bad proof"), answer
            writer.close()

    run_with_relay(tmp_path, scenario)
