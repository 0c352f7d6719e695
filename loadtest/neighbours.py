"""How much a noisy sandbox slows its neighbour (part of `make load`).

Sandbox B's exec round trip is measured alone, then while sandbox A burns
its whole CPU quota (more busy loops than it has CPUs) and holds its memory
at the limit (a hog re-touching ~90% of it). The ratio of B's medians is
the figure; the stated bound is `--bound` (default 3x), and the run exits 1
above it. Both phases run in the same process, back to back.

The noise is checked, not assumed: B is measured only once A's busy loops
are all running and the hog holds its working set, and the run fails if any
of them had ended by the end of B's measurement (an OOM kill, say), since B
would then have been measured beside less noise than the report says.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from loadtest.report import machine, write_section
from tests.serverproc import ServerProcess

KEY = "neighbour-key"
LOOPS = 3
HOG_MIB = 900
HOG = (
    'python3 -c "import time\n'
    f"b = bytearray({HOG_MIB} * 1024 * 1024)\n"
    "while True:\n"
    '    for i in range(0, len(b), 4096): b[i] = (b[i] + 1) % 256\n"'
)


def rtts(c: httpx.Client, sid: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        r = c.post(f"/toolbox/{sid}/process/execute", json={"command": "true"})
        out.append(time.perf_counter() - start)
        r.raise_for_status()
    return out


def noise_running(c: httpx.Client, sid: str, cmd_ids: list[str]) -> list[str]:
    """Why the noise is not (or no longer) at full strength; empty when it is."""
    missing = []
    base = f"/toolbox/{sid}/process/session/noise/command"
    ended = [cid for cid in cmd_ids if c.get(f"{base}/{cid}").json()["exitCode"] is not None]
    if ended:
        missing.append(f"{len(ended)} of the {len(cmd_ids)} noise commands ended")
    # The hog's resident set: it re-touches every page, so all of them are in.
    probe = "ps -eo rss=,args= | awk '/[b]ytearray/ {print $1}'"
    out = c.post(f"/toolbox/{sid}/process/execute", json={"command": probe}).json()["stdout"]
    rss_mib = max((int(x) for x in out.split()), default=0) // 1024
    if rss_mib < HOG_MIB * 0.95:
        missing.append(f"the hog holds {rss_mib} MiB of its {HOG_MIB}")
    return missing


def wait_for_noise(c: httpx.Client, sid: str, cmd_ids: list[str], timeout: float = 120) -> None:
    """Until every busy loop runs and the hog holds its working set (asked, so polled)."""
    deadline = time.monotonic() + timeout
    while missing := noise_running(c, sid, cmd_ids):
        # An ended command never comes back: fail at once rather than at the deadline.
        if time.monotonic() > deadline or "ended" in missing[0]:
            raise SystemExit(f"the noise did not start: {'; '.join(missing)}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--bound", type=float, default=3.0)
    parser.add_argument("--report", default="RELIABILITY.md")
    args = parser.parse_args()
    host = machine()
    with tempfile.TemporaryDirectory(prefix="cove-neigh-") as tmp:
        server = ServerProcess(Path(tmp) / "data", [KEY]).start()
        headers = {"Authorization": f"Bearer {KEY}"}
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
                noisy = c.post("/api/sandbox", json={"cpu": 1, "memory": 1}).json()["id"]
                quiet = c.post("/api/sandbox", json={"cpu": 1, "memory": 1}).json()["id"]
                rtts(c, quiet, 20)  # warm
                alone = rtts(c, quiet, args.runs)
                c.post(f"/toolbox/{noisy}/process/session", json={"sessionId": "noise"})
                cmd_ids = [
                    c.post(
                        f"/toolbox/{noisy}/process/session/noise/exec",
                        json={"command": command, "runAsync": True},
                    ).json()["cmdId"]
                    for command in ["while :; do :; done"] * LOOPS + [HOG]
                ]
                wait_for_noise(c, noisy, cmd_ids)
                noisy_phase = rtts(c, quiet, args.runs)
                lost = noise_running(c, noisy, cmd_ids)
                c.delete(f"/toolbox/{noisy}/process/session/noise")
        finally:
            server.delete_all_sandboxes()
            server.stop()
    if lost:
        raise SystemExit(f"the noise stopped while B was measured: {'; '.join(lost)}")
    a, b = statistics.median(alone), statistics.median(noisy_phase)
    ratio = b / a
    verdict = "within" if ratio <= args.bound else "ABOVE"
    text = (
        f"Sandbox B's exec round trip (`true`, n={args.runs} each; {host}), alone and while "
        f"sandbox A burns {LOOPS} busy loops on its 1-CPU quota and re-touches {HOG_MIB} MiB of "
        f"its 1 GiB (both checked running before and after B's runs): "
        f"median {a * 1000:.1f} ms alone, {b * 1000:.1f} ms beside the noise: **{ratio:.2f}x**, "
        f"{verdict} the stated bound of {args.bound:g}x. Command: `python -m loadtest.neighbours`."
    )
    print(text)
    write_section(Path(args.report), "neighbours", "Neighbours", text)
    raise SystemExit(0 if ratio <= args.bound else 1)


if __name__ == "__main__":
    main()
