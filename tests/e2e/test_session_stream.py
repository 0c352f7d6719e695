"""Session log streaming past the disk cap, on a server whose cap is 1 MiB per stream:
a live follower gets every byte, nobody following never blocks the command, a follower
that reads nothing blocks the writer (and only it), leaving releases it, and offsets
are positions in the whole output, past the cap too."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.wire.websocket import ConnectionClosed, WebSocket, new_key
from tests.serverproc import ServerProcess

CAP = 1024 * 1024
KEY = "stream-key"
# While a follower reads nothing, the writer may still fill what lies between: its
# pipe (1 MiB), what the agent holds for followers (4 MiB), and socket buffers on
# both hops (a few MiB on loopback TCP). Far below what it writes.
STALL_BOUND = 32 * 1024 * 1024
STALL_TOTAL = 128 * 1024 * 1024
# Writes "r", then `total` bytes to stdout after a line on stdin; when stdout has not
# been writable for 2 s, it says how far it got through the FIFO `report` (its own
# clock: the test waits for that report as an event).
WRITER = r"""
import os, select, sys
total, report = int(sys.argv[1]), sys.argv[2]
os.write(1, b"r")
sys.stdin.readline()
os.set_blocking(1, False)
chunk, done, told = b"w" * 65536, 0, False
while done < total:
    try:
        done += os.write(1, chunk[: total - done])
    except BlockingIOError:
        if not select.select([], [1], [], 2.0)[1] and not told:
            told = True
            with open(report, "w") as f:
                f.write(f"{done}\n")
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-stream-") as tmp:
        env = {"COVE_MAX_LOG_BYTES": str(CAP), "COVE_WARM_POOL": "0"}
        proc = ServerProcess(Path(tmp) / "data", [KEY], env=env).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def daytona(server: ServerProcess) -> Any:
    # Module-scoped, for this module's server; tests/conftest.py's `sandbox` uses it.
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=KEY, api_url=server.api_url))


@pytest.fixture
def session(api: httpx.Client, sandbox: Any) -> Iterator[str]:
    sid = f"st-{uuid.uuid4().hex[:8]}"
    made = api.post(f"/toolbox/{sandbox.id}/process/session", json={"sessionId": sid})
    assert made.status_code == 201, made.text
    base = f"/toolbox/{sandbox.id}/process/session/{sid}"
    try:
        yield base
    finally:
        api.delete(base)


def start(api: httpx.Client, base: str, command: str, **extra: Any) -> str:
    r = api.post(f"{base}/exec", json={"command": command, "runAsync": True, **extra})
    assert r.status_code == 202, r.text
    return str(r.json()["cmdId"])


async def open_follower(port: int, path: str) -> WebSocket:
    """A follow stream that reads only when asked (a small receive buffer, no thread)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {new_key()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    return WebSocket(reader, writer, client=True)


async def read_all(ws: WebSocket) -> tuple[dict[int, bytes], int]:
    """Each stream's payload, and the close code; the connection is closed after."""
    got = {1: bytearray(), 2: bytearray()}
    try:
        while True:
            frame = (await ws.recv()).data
            got[frame[0]] += frame[3:]
    except ConnectionClosed as closed:
        return {k: bytes(v) for k, v in got.items()}, closed.code
    finally:
        ws.abort()


def follow(server: ServerProcess, path: str, timeout: float = 60) -> tuple[dict[int, bytes], int]:
    async def run() -> tuple[dict[int, bytes], int]:
        ws = await open_follower(server.port, path)
        return await asyncio.wait_for(read_all(ws), timeout)

    return asyncio.run(run())


def test_a_follower_gets_all_output_past_the_cap_official_sdk(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    p = sandbox.process
    p.create_session("past-cap")
    try:
        # ~6.9 MB of known text, well past the 1 MiB cap, after a go-ahead on stdin.
        cmd = p.execute_session_command(
            "past-cap",
            SessionExecuteRequest(
                command="echo ready; read go; seq 1 1000000; echo end >&2", run_async=True
            ),
        )
        out: list[str] = []
        err: list[str] = []
        ready = asyncio.Event()

        def on_stdout(text: str) -> None:
            out.append(text)
            ready.set()  # the follower is attached: output from here on is held for it

        async def main() -> None:
            task = asyncio.create_task(
                p.get_session_command_logs_async("past-cap", cmd.cmd_id, on_stdout, err.append)
            )
            await asyncio.wait_for(ready.wait(), 30)
            p.send_session_command_input("past-cap", cmd.cmd_id, "go\n")
            await asyncio.wait_for(task, 60)

        asyncio.run(main())
        expected = "ready\ngo\n" + "".join(f"{i}\n" for i in range(1, 1_000_001))
        text = "".join(out)
        assert len(text) == len(expected) and text == expected
        assert "".join(err) == "end\n"
        assert p.get_session_command("past-cap", cmd.cmd_id).exit_code == 0
    finally:
        p.delete_session("past-cap")


def test_nobody_following_never_blocks_and_the_disk_stays_capped(
    api: httpx.Client, session: str
) -> None:
    r = api.post(f"{session}/exec", json={"command": "head -c 50000000 /dev/zero; echo ok >&2"})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["exitCode"] == 0 and body["truncated"] is True and body["stderr"] == "ok\n"
    sid, cid = session.rsplit("/", 1)[1], body["cmdId"]
    stat = f"stat -c %s /run/cove/sessions/{sid}/{cid}/stdout"
    size = api.post(f"{session}/exec", json={"command": stat})
    assert size.json()["stdout"] == f"{CAP}\n"


def start_writer(api: httpx.Client, session: str) -> tuple[str, str]:
    """Start WRITER for STALL_TOTAL bytes; its command id and stall report FIFO."""
    report = f"/tmp/stall-{uuid.uuid4().hex[:8]}"
    assert api.post(f"{session}/exec", json={"command": f"mkfifo {report}"}).json()["exitCode"] == 0
    script = f"/tmp/writer-{uuid.uuid4().hex[:8]}.py"
    api.post(f"{session}/exec", json={"command": f"cat > {script} <<'EOF'\n{WRITER}\nEOF"})
    cid = start(api, session, f"python3 {script} {STALL_TOTAL} {report}", suppressInputEcho=True)
    return cid, report


@pytest.mark.timeout(300)
def test_a_follower_reading_nothing_blocks_only_its_writer(
    api: httpx.Client, session: str, server: ServerProcess, sandbox: Any
) -> None:
    cid, report = start_writer(api, session)
    path = f"{session}/command/{cid}/logs?follow=true"

    async def run() -> tuple[int, dict[int, bytes], int]:
        ws = await open_follower(server.port, path)
        assert (await ws.recv()).data == b"\x01\x01\x01r"  # attached: output is held for it
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(
            None, lambda: api.post(f"{session}/command/{cid}/input", json={"data": "go\n"})
        )
        assert r.status_code == 204, r.text
        # The writer blocks (its own 2 s clock); the agent keeps serving everyone else.
        other = f"/toolbox/{sandbox.id}/process/execute"
        stalled = await loop.run_in_executor(
            None,
            lambda: api.post(other, json={"command": f"timeout 60 head -n1 {report}"}).json(),
        )
        assert stalled["exitCode"] == 0, stalled
        got, code = await asyncio.wait_for(read_all(ws), 60)
        return int(stalled["result"]), got, code

    written, got, code = asyncio.run(run())
    print(f"\nthe writer blocked after {written / (1 << 20):.1f} MiB with a stuck follower")
    assert 0 < written <= STALL_BOUND, f"the writer got {written} bytes out to a stuck follower"
    # Once the follower reads, the writer completes and every byte arrives.
    assert code == 1000 and len(got[1]) == STALL_TOTAL and got[1] == b"w" * STALL_TOTAL
    assert api.get(f"{session}/command/{cid}").json()["exitCode"] == 0


@pytest.mark.timeout(300)
def test_a_follower_that_leaves_releases_the_writer(
    api: httpx.Client, session: str, server: ServerProcess, sandbox: Any
) -> None:
    cid, report = start_writer(api, session)
    path = f"{session}/command/{cid}/logs?follow=true"

    async def run() -> tuple[dict[int, bytes], int]:
        ws = await open_follower(server.port, path)
        assert (await ws.recv()).data == b"\x01\x01\x01r"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, lambda: api.post(f"{session}/command/{cid}/input", json={"data": "x\n"})
        )
        other = f"/toolbox/{sandbox.id}/process/execute"
        stalled = await loop.run_in_executor(
            None, lambda: api.post(other, json={"command": f"timeout 60 head -n1 {report}"})
        )
        assert stalled.json()["exitCode"] == 0
        ws.abort()  # gone without a close handshake
        # A new follower ends when the command does: it would wait forever if the
        # old one still held the pipes.
        return await asyncio.wait_for(read_all(await open_follower(server.port, path)), 60)

    _, code = asyncio.run(run())
    assert code == 1000
    assert api.get(f"{session}/command/{cid}").json()["exitCode"] == 0


def test_offsets_are_positions_in_the_whole_output_past_the_cap(
    api: httpx.Client, session: str, server: ServerProcess
) -> None:
    # Positions: "r" 0, 2 MiB of 'a' 1..2 MiB, then stderr "0123456789" at 2 MiB + 1.
    cid = start(api, session, "printf r; read go; head -c 2097152 /dev/zero | tr '\\0' a; "
                "printf 0123456789 >&2", suppressInputEcho=True)  # fmt: skip
    path = f"{session}/command/{cid}/logs?follow=true"
    tail = 2 * CAP + 1

    async def live() -> tuple[tuple[dict[int, bytes], int], tuple[dict[int, bytes], int]]:
        whole = await open_follower(server.port, path)
        first = (await whole.recv()).data  # "r": attached, so what follows is held for it
        assert first == b"\x01\x01\x01r"
        resumed = await open_follower(server.port, f"{path}&offset={tail + 3}")
        r = await asyncio.get_running_loop().run_in_executor(
            None, lambda: api.post(f"{session}/command/{cid}/input", json={"data": "go\n"})
        )
        assert r.status_code == 204
        a, b = await asyncio.gather(read_all(whole), read_all(resumed))
        a[0][1] = b"r" + a[0][1]
        return a, b

    (whole, code), (resumed, code2) = asyncio.run(asyncio.wait_for(live(), 60))
    assert code == code2 == 1000
    assert whole[1] == b"r" + b"a" * 2 * CAP and whole[2] == b"0123456789"
    # Resumed live at a position past the cap: exactly the bytes from there.
    assert resumed == {1: b"", 2: b"3456789"}
    # After the end, only what the disk kept is left; positions mean the same.
    again, _ = follow(server, f"{path}&offset={tail + 3}")
    assert again == {1: b"", 2: b"3456789"}
    # An offset whose bytes were dropped from disk starts at the next byte still there.
    gone, _ = follow(server, f"{path}&offset={CAP + CAP // 2}")
    assert gone == {1: b"", 2: b"0123456789"}
    replay, _ = follow(server, path)
    assert replay == {1: b"r" + b"a" * (CAP - 1), 2: b"0123456789"}
    assert api.get(f"{session}/command/{cid}").json()["truncated"] is True
