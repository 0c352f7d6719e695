"""How much a noisy sandbox slows its neighbour (part of `make load`).

Sandbox B's exec round trip is measured alone, then while sandbox A burns
its whole CPU quota (more busy loops than it has CPUs) and holds its memory
at the limit (a hog re-touching ~90% of it). The ratio of B's medians is
the figure; the stated bound is `--bound` (default 3x), and the run exits 1
above it. Both phases run in the same process, back to back.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from loadtest.report import write_section
from tests.serverproc import ServerProcess

KEY = "neighbour-key"
HOG = (
    'python3 -c "import time\n'
    "b = bytearray(900 * 1024 * 1024)\n"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--bound", type=float, default=3.0)
    parser.add_argument("--report", default="RELIABILITY.md")
    args = parser.parse_args()
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
                for command in ["while :; do :; done"] * 3 + [HOG]:
                    c.post(
                        f"/toolbox/{noisy}/process/session/noise/exec",
                        json={"command": command, "runAsync": True},
                    )
                time.sleep(3)  # let the hog reach its working set before measuring
                noisy_phase = rtts(c, quiet, args.runs)
                c.delete(f"/toolbox/{noisy}/process/session/noise")
        finally:
            server.delete_all_sandboxes()
            server.stop()
    a, b = statistics.median(alone), statistics.median(noisy_phase)
    ratio = b / a
    verdict = "within" if ratio <= args.bound else "ABOVE"
    text = (
        f"Sandbox B's exec round trip (`true`, n={args.runs} each, 2 cores), alone and while "
        f"sandbox A burns 3 busy loops on its 1-CPU quota and re-touches 900 MiB of its 1 GiB: "
        f"median {a * 1000:.1f} ms alone, {b * 1000:.1f} ms beside the noise: **{ratio:.2f}x**, "
        f"{verdict} the stated bound of {args.bound:g}x. Command: `python -m loadtest.neighbours`."
    )
    print(text)
    write_section(Path(args.report), "neighbours", "Neighbours", text)
    raise SystemExit(0 if ratio <= args.bound else 1)


if __name__ == "__main__":
    main()
