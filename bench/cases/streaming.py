"""5. Log streaming: a command writing 1 GiB to stdout, followed over the WebSocket.

Wire page §4.3: a session command started with `runAsync`, then its logs
followed with `?follow=true`; the stream is bytes with 3-byte channel markers,
closed with 1000 once the command has exited and everything was sent.
"""

from __future__ import annotations

import time
import uuid

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bench import baselines
from bench.client import Cove
from bench.stats import Row, Summary, not_measured

TARGET_FRACTION = 0.5
MARKERS = (b"\x01\x01\x01", b"\x02\x02\x02")
TITLE = "Log streaming: 1 GiB of stdout followed over the WebSocket"


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
    url = cove.ws_url(sid, f"/process/session/{session}/command/{cmd['cmdId']}/logs?follow=true")
    total = markers = 0
    tail = b""
    # No permessage-deflate: the official SDK (httpx-ws) does not offer it either.
    with connect(url, additional_headers=cove.headers, max_size=None, compression=None) as ws:
        try:
            while True:
                frame = ws.recv()
                data = frame.encode() if isinstance(frame, str) else frame
                total += len(data)
                # Markers may straddle frames: look at the previous frame's last bytes too.
                window = tail + data[:2] if tail else b""
                markers += sum(window.count(m) for m in MARKERS)
                markers += sum(data.count(m) for m in MARKERS)
                tail = data[-2:]
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code not in (1000, None):
                raise RuntimeError(f"log stream closed with {code}: {closed}") from None
    elapsed = time.perf_counter() - t0
    cove.http.delete(f"/toolbox/{sid}/process/session/{session}")
    return elapsed, total - 3 * markers


def measure(cove: Cove, sid: str, nbytes: int, runs: int) -> Row:
    """`nbytes` once (the issue's 1 GiB), then the throughput at the per-command log cap.

    Session logs are kept on disk with a cap per stream (64 MiB by default);
    output past it is dropped, not streamed. So the 1 GiB run says how much
    was delivered, and the throughput figures use commands that fit the cap.
    """
    r = cove.http.get(f"/toolbox/{sid}/process/session")
    if r.status_code != 200:
        return not_measured(
            "stream",
            TITLE,
            f">= {TARGET_FRACTION:.0%} of a raw pipe",
            "feature not landed (no /process/session endpoints yet)",
        )
    big_s, big_got = follow(cove, sid, nbytes)
    size = min(nbytes, big_got) if big_got else nbytes
    mib = size / (1 << 20)
    cove_rates: list[float] = []
    short = ""
    for _ in range(runs):
        elapsed, got = follow(cove, sid, size)
        if got != size:
            short = f"; a {mib:.0f} MiB run delivered only {got} bytes"
        cove_rates.append(mib / elapsed)
    pipe = [baselines.raw_pipe_throughput(size) for _ in range(runs)]
    row = Row(
        "stream",
        f"Log streaming: {mib:.0f} MiB of stdout followed over the WebSocket",
        Summary.of(cove_rates, "MiB/s"),
        Summary.of(pipe, "MiB/s"),
        f"`head -c {size} /dev/zero` read through a raw pipe on the host",
        f">= {TARGET_FRACTION:.0%} of a raw pipe",
        note=(
            f"a {nbytes / (1 << 30):g} GiB command delivered {big_got / (1 << 20):.0f} MiB "
            f"in {big_s:.1f} s (the per-stream log cap drops the rest){short}; "
            "higher is better; ratio = Cove / pipe"
            if big_got < nbytes
            else f"the {nbytes / (1 << 30):g} GiB run took {big_s:.1f} s{short}; "
            "higher is better; ratio = Cove / pipe"
        ),
        samples=cove_rates,
        baseline_samples=pipe,
    )
    row.met = not short and row.ratio is not None and row.ratio >= TARGET_FRACTION
    return row
