"""5. Log streaming: a command writing 1 GiB to stdout, followed over the WebSocket.

Wire page §4.3: a session command started with `runAsync`, then its logs
followed with `?follow=true`; the stream is bytes with 3-byte channel markers,
closed with 1000 once the command has exited and everything was sent.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid

from bench import baselines
from bench.client import Cove
from bench.stats import Row, Summary, not_measured
from cove.wire.websocket import new_key

TARGET_FRACTION = 0.5
MARKERS = (b"\x01\x01\x01", b"\x02\x02\x02")
TITLE = "Log streaming: 1 GiB of stdout followed over the WebSocket"
READ_BUFFER = 4 * 1024 * 1024


def follow(cove: Cove, sid: str, nbytes: int) -> tuple[float, int]:
    """Seconds from starting the command to the stream's close, and payload bytes."""
    session = f"bench-{uuid.uuid4().hex[:8]}"
    cove.post(sid, "/process/session", {"sessionId": session})
    t0 = time.perf_counter()
    cmd = cove.post(
        sid,
        f"/process/session/{session}/exec",
        {"command": f"head -c {nbytes} /dev/zero", "runAsync": True},
    )
    path = f"/toolbox/{sid}/process/session/{session}/command/{cmd['cmdId']}/logs?follow=true"
    got = read_log_stream(cove.server.port, cove.headers["Authorization"], path)
    elapsed = time.perf_counter() - t0
    cove.http.delete(f"/toolbox/{sid}/process/session/{session}")
    return elapsed, got


def sandbox_pipe_throughput(cove: Cove, sid: str, nbytes: int) -> float:
    """MiB/s of `head -c N /dev/zero | cat` inside the sandbox, under its CPU quota."""
    script = (
        f"s=$(date +%s%N); head -c {nbytes} /dev/zero | cat > /dev/null; "
        "echo $(( $(date +%s%N) - s ))"
    )
    ns = int(cove.exec(sid, script)["result"])
    return nbytes / (1 << 20) / (ns / 1e9)


def read_log_stream(port: int, auth: str, path: str) -> int:
    """Payload bytes of a follow stream (markers excluded), read until its close.

    A lean reader: large receives into one buffer and frame headers parsed in
    place, so that the figure is the server's and not a WebSocket library's
    (websockets' sync client cost more CPU per byte than the server's relay).
    No permessage-deflate is offered, as the official SDK offers none.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {new_key()}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: {auth}\r\n\r\n"
            ).encode()
        )
        buf = bytearray(READ_BUFFER)
        view = memoryview(buf)
        have = pos = 0
        while (end := buf.find(b"\r\n\r\n", 0, have)) < 0:
            have += _recv(sock, view[have:])
        if b" 101 " not in buf[: buf.find(b"\r\n")]:
            raise RuntimeError(f"log stream refused: {bytes(buf[:end])!r}")
        pos, payload, frames, left = end + 4, 0, 0, 0
        while True:
            if left:  # inside a frame's payload
                take = min(left, have - pos)
                left, pos, payload = left - take, pos + take, payload + take
                if left:
                    have, pos = _refill(sock, buf, view, have, pos)
                continue
            frame = _frame(buf, pos, have)
            if frame is None:
                have, pos = _refill(sock, buf, view, have, pos)
                continue
            opcode, start, n = frame
            if opcode == 0x8:  # close: its code
                code = struct.unpack_from("!H", buf, start)[0] if n >= 2 else None
                if code not in (1000, None):
                    raise RuntimeError(f"log stream closed with {code}")
                return payload - 3 * frames
            if bytes(buf[start : start + 3]) not in MARKERS:
                raise RuntimeError("a log frame does not start with a channel marker")
            frames, left, pos = frames + 1, n, start
    finally:
        sock.close()


def _frame(buf: bytearray, pos: int, have: int) -> tuple[int, int, int] | None:
    """(opcode, payload start, payload length) of the frame at `pos`, once enough is in.

    Enough: the header and the marker of a data frame, or a whole close frame.
    """
    if have - pos < 2:
        return None
    n = buf[pos + 1] & 0x7F
    start = pos + (2 if n < 126 else 4 if n == 126 else 10)
    if have < start:
        return None
    if n == 126:
        n = struct.unpack_from("!H", buf, pos + 2)[0]
    elif n == 127:
        n = struct.unpack_from("!Q", buf, pos + 2)[0]
    opcode = buf[pos] & 0x0F
    if have - start < (n if opcode == 0x8 else min(n, 3)):
        return None
    return opcode, start, n


def _refill(
    sock: socket.socket, buf: bytearray, view: memoryview, have: int, pos: int
) -> tuple[int, int]:
    """Receive more; what is not parsed yet (a header at most) moves to the front."""
    if pos == have:
        have = pos = 0
    elif pos:
        buf[: have - pos] = buf[pos:have]
        have, pos = have - pos, 0
    return have + _recv(sock, view[have:]), pos


def _recv(sock: socket.socket, into: memoryview) -> int:
    n = sock.recv_into(into)
    if not n:
        raise RuntimeError("the log stream's connection closed before its close frame")
    return n


def measure(cove: Cove, sid: str, nbytes: int, runs: int) -> Row:
    """`runs` followed commands of `nbytes` (the issue's 1 GiB), against a raw pipe of as much.

    Session logs keep at most 64 MiB per stream on disk, but a follower attached
    while the command runs gets every byte; a run that delivers less (e.g. the
    follower attached after the cap was passed) is reported and fails the row.
    """
    r = cove.http.get(f"/toolbox/{sid}/process/session")
    if r.status_code != 200:
        return not_measured(
            "stream",
            TITLE,
            f">= {TARGET_FRACTION:.0%} of a raw pipe",
            "feature not landed (no /process/session endpoints yet)",
        )
    mib = nbytes / (1 << 20)
    cove_rates: list[float] = []
    short: list[int] = []
    took: list[float] = []
    for _ in range(runs):
        elapsed, got = follow(cove, sid, nbytes)
        if got != nbytes:
            short.append(got)
        cove_rates.append(got / (1 << 20) / elapsed)
        took.append(elapsed)
    pipe = [baselines.raw_pipe_throughput(nbytes) for _ in range(runs)]
    inside = sandbox_pipe_throughput(cove, sid, nbytes)
    size = f"{nbytes / (1 << 30):g} GiB" if nbytes >= 1 << 30 else f"{mib:.0f} MiB"
    delivered = (
        f"; {len(short)} run(s) delivered only "
        + ", ".join(f"{got / (1 << 20):.0f} MiB" for got in short)
        if short
        else "; every byte delivered in every run"
    )
    row = Row(
        "stream",
        f"Log streaming: {size} of stdout followed over the WebSocket",
        Summary.of(cove_rates, "MiB/s"),
        Summary.of(pipe, "MiB/s"),
        f"`head -c {nbytes} /dev/zero` read through a raw pipe on the host",
        f">= {TARGET_FRACTION:.0%} of a raw pipe",
        note=(
            f"median {sorted(took)[len(took) // 2]:.2f} s per command{delivered}; "
            f"for scale, inside the sandbox (its CPU quota shared by the writer and the "
            f"agent) `head | cat` moves as much at {inside:.0f} MiB/s; "
            "higher is better; ratio = Cove / pipe"
        ),
        samples=cove_rates,
        baseline_samples=pipe,
    )
    row.met = not short and row.ratio is not None and row.ratio >= TARGET_FRACTION
    return row
