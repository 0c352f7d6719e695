"""Previews: HTTP through a preview link against the same app reached directly, same run.

The app is tests/e2e/preview_app.py (standard library asyncio). Through the
preview it runs inside the sandbox: client -> server -> agent's tunnel ->
127.0.0.1:PORT in the sandbox. Directly it runs as a host process on a
loopback port, the same code and the same client, so the difference is what
the preview hop costs. The app keeps connections alive on both sides: the
client's to the app (direct) or to the server, and the server's tunnels to the
app (kept between requests, see `server/preview/exchange.py`).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.client import Cove
from bench.stats import Row, Summary
from tests.serverproc import free_port

APP = Path(__file__).resolve().parents[2] / "tests" / "e2e" / "preview_app.py"
PORT = 8080
TOKEN = "x-daytona-preview-token"
MiB = 1 << 20


def start_in_sandbox(cove: Cove, sid: str) -> None:
    source = base64.b64encode(APP.read_bytes()).decode()
    command = (
        f"echo {source} | base64 -d > /tmp/preview_app.py && "
        f"python3 /tmp/preview_app.py {PORT} </dev/null >/dev/null 2>&1"
    )
    out = cove.exec(sid, command)
    if out.get("exitCode") != 0:
        raise RuntimeError(f"the app did not start in the sandbox: {out}")


def round_trips(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> list[float]:
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url, headers=headers)
        took.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {r.status_code} {r.text[:200]}")
    return took


def download_rates(
    client: httpx.Client, url: str, headers: dict[str, str], size: int, runs: int
) -> list[float]:
    rates = []
    for _ in range(runs):
        got = 0
        t0 = time.perf_counter()
        with client.stream("GET", f"{url}?n={size}", headers=headers) as r:
            for piece in r.iter_raw(1 << 20):
                got += len(piece)
        elapsed = time.perf_counter() - t0
        if got != size:
            raise RuntimeError(f"GET {url}: {got} of {size} bytes")
        rates.append(size / MiB / elapsed)
    return rates


def measure_in_own_sandbox(cove: Cove, n: int, size: int, runs: int) -> list[Row]:
    """In a sandbox of its own, deleted after: the app must not weigh on later areas."""
    sid = cove.create()
    try:
        return measure(cove, sid, n, size, runs)
    finally:
        cove.delete(sid)


def measure(cove: Cove, sid: str, n: int, size: int, runs: int) -> list[Row]:
    start_in_sandbox(cove, sid)
    link = cove.http.get(f"/api/sandbox/{sid}/ports/{PORT}/preview-url").json()
    auth = {TOKEN: link["token"]}
    port = free_port()
    direct = subprocess.Popen(
        [sys.executable, str(APP), str(port), "--foreground"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert direct.stdout is not None
        if direct.stdout.readline().strip() != "listening":
            raise RuntimeError("the direct app did not start")
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=120) as client:
            round_trips(client, link["url"] + "/hello", auth, 10)  # warm both paths
            round_trips(client, base + "/hello", {}, 10)
            via = round_trips(client, link["url"] + "/hello", auth, n)
            plain = round_trips(client, base + "/hello", {}, n)
            via_rate = download_rates(client, link["url"] + "/big", auth, size, runs)
            plain_rate = download_rates(client, base + "/big", {}, size, runs)
    finally:
        direct.terminate()
        direct.wait(10)
        if direct.stdout is not None:
            direct.stdout.close()
    rtt = Row(
        "preview-rtt",
        "Preview: HTTP GET round trip through a preview link",
        Summary.of(via, "ms"),
        Summary.of(plain, "ms"),
        "the same app as a host process, reached directly",
        note="kept-alive connections on both sides; lower is better",
        samples=via,
        baseline_samples=plain,
    )
    rate = Row(
        "preview-download",
        f"Preview: a {size // MiB} MiB answer streamed through a preview link",
        Summary.of(via_rate, "MiB/s"),
        Summary.of(plain_rate, "MiB/s"),
        "the same app as a host process, reached directly",
        note="higher is better; ratio = preview / direct",
        samples=via_rate,
        baseline_samples=plain_rate,
    )
    return [rtt, rate]
