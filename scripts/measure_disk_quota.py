"""Cold create to first exec, disk quota on vs off, interleaved (same run).

    PYTHONPATH=. N=10 .venv/bin/python scripts/measure_disk_quota.py   (as root)

Two servers without a warm pool, COVE_DISK_QUOTA=auto and off; each round
creates one sandbox on each, runs `true`, deletes it. Prints the medians.
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.serverproc import ServerProcess

N = int(os.environ.get("N", "10"))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cove-qm-") as tmp:
        servers = {
            mode: ServerProcess(
                Path(tmp) / mode, ["k"], env={"COVE_WARM_POOL": "0", "COVE_DISK_QUOTA": mode}
            ).start(60)
            for mode in ("auto", "off")
        }
        made: dict[str, list[float]] = {m: [] for m in servers}
        gone: dict[str, list[float]] = {m: [] for m in servers}
        try:
            for _ in range(N):
                for mode, server in servers.items():
                    auth = {"Authorization": "Bearer k"}
                    with httpx.Client(base_url=server.url, headers=auth, timeout=120) as c:
                        t = time.perf_counter()
                        sid = c.post("/api/sandbox", json={}).json()["id"]
                        run = c.post(f"/toolbox/{sid}/process/execute", json={"command": "true"})
                        assert run.json()["exitCode"] == 0
                        made[mode].append(time.perf_counter() - t)
                        t = time.perf_counter()
                        c.delete(f"/api/sandbox/{sid}")
                        gone[mode].append(time.perf_counter() - t)
            for mode in servers:
                print(
                    f"{mode}: create->exec median {1000 * statistics.median(made[mode]):.0f} ms, "
                    f"delete median {1000 * statistics.median(gone[mode]):.0f} ms (n={N})"
                )
            print("load", os.getloadavg())
        finally:
            for server in servers.values():
                server.delete_all_sandboxes()
                server.stop()


if __name__ == "__main__":
    main()
