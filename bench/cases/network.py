"""Network: time to interactive with egress on vs. off, and TCP throughput out of a sandbox.

Root only (veth pairs, nftables, the test internet's namespace). The
throughput target is the test internet of tests/network (a namespace this
run makes, 198.18.N.0/24): the same sender runs inside a sandbox and on the
host, so the ratio is the cost of the veth hop, the nftables rules and NAT.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.client import NO_QUOTAS, Cove
from bench.stats import Row, Summary, not_measured, stopwatch
from tests.network.internet import FakeInternet, can_run
from tests.serverproc import ServerProcess

SEND = r"""
import socket, sys, time
host, total = sys.argv[1], int(sys.argv[2])
chunk = b"x" * (1 << 20)
t0 = time.perf_counter()
s = socket.create_connection((host, 5001))
sent = 0
while sent < total:
    s.sendall(chunk)
    sent += len(chunk)
s.shutdown(socket.SHUT_WR)
got = int(s.makefile().readline())
assert got == sent, (got, sent)
print(sent / (time.perf_counter() - t0) / 1e6)
"""


@contextlib.contextmanager
def _server(data: Path, network: str, dns: str) -> Iterator[Cove]:
    env = {"COVE_WARM_POOL": "0", "COVE_NETWORK": network, "COVE_NETWORK_DNS": dns, **NO_QUOTAS}
    server = ServerProcess(data, ["bench-key"], env=env).start(timeout=60)
    cove = Cove(server)
    try:
        yield cove
    finally:
        for sid in cove.list_ids():
            cove.delete(sid)
        cove.close()
        server.stop()


def _tti(servers: list[Cove], runs: int) -> list[list[float]]:
    """Cold time to interactive on each server, runs interleaved so that the
    host's load (other work on these cores) weighs on both alike."""
    samples: list[list[float]] = [[] for _ in servers]
    for i in range(runs + 1):
        for cove, into in zip(servers, samples, strict=True):
            t: list[float] = []
            with stopwatch(t):
                sid = cove.create()
                cove.exec(sid, "true")
            cove.delete(sid)
            if i:  # the first one pays the server's own warm-up
                into.append(t[0])
    return samples


def measure(quick: bool) -> list[Row]:
    why = can_run()
    if why:
        return [
            not_measured("net_tti", "Time to interactive, egress on vs. off", "", why),
            not_measured("net_tcp", "TCP throughput out of a sandbox", "", why),
        ]
    runs = 8 if quick else 20
    mb = 64 if quick else 512
    inet = FakeInternet().start()
    rows: list[Row] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cove-bench-net-") as tmp,
            _server(Path(tmp) / "off", "off", inet.dns) as off,
            _server(Path(tmp) / "on", "auto", inet.dns) as on,
        ):
            tti_off, tti_on = _tti([off, on], runs)
            sid = on.create()
            on.exec(sid, f"cat > /tmp/send.py <<'EOF'\n{SEND}\nEOF")
            inside, outside = [], []
            for _ in range(1 if quick else 3):
                r = on.exec(sid, f"python3 /tmp/send.py {inet.addresses[0]} {mb << 20}")
                inside.append(float(r["stdout"]))
                outside.append(_host_send(inet.addresses[0], mb << 20))
        cold = Summary.of(tti_on, "ms")
        rows.append(
            Row(
                "net_tti",
                "Time to interactive (create + first `true`), cold, egress on",
                cold,
                Summary.of(tti_off, "ms"),
                "the same server with COVE_NETWORK=off (loopback only)",
                "egress costs <= 30 ms a cold start",
                cold.median - Summary.of(tti_off, "ms").median <= 30,
                note="a warm-pool sandbox has its network already (see `tti`)",
                samples=tti_on,
                baseline_samples=tti_off,
            )
        )
        rows.append(
            Row(
                "net_tcp",
                f"TCP throughput, {mb} MiB sandbox -> test host (MB/s, higher is better)",
                Summary.of(inside, "MB/s"),
                Summary.of(outside, "MB/s"),
                "the same sender on the host -> test host",
                ">= 50% of the host's",
                Summary.of(inside, "MB/s").median >= 0.5 * Summary.of(outside, "MB/s").median,
                samples=inside,
                baseline_samples=outside,
            )
        )
    finally:
        inet.stop()
    return rows


def _host_send(host: str, total: int) -> float:
    import subprocess

    t0 = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/python3", "-c", SEND, host, str(total)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"host sender failed after {time.perf_counter() - t0:.1f}s: {out.stderr}"
        )
    return float(out.stdout)
