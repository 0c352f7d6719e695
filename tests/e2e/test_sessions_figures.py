"""Session figures, printed with `pytest -s` and never asserted (a loaded machine
is slow, not wrong): sync exec round trip, how soon a follow stream closes after
its command, and log streaming throughput through the official SDK."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import pytest


@pytest.mark.timeout(300)
def test_session_figures(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    p = sandbox.process
    p.create_session("figures")
    try:

        def run(command: str, **extra: Any) -> Any:
            return p.execute_session_command(
                "figures", SessionExecuteRequest(command=command, **extra)
            )

        run("true")
        rtt = []
        for _ in range(30):
            began = time.perf_counter()
            run("true")
            rtt.append(time.perf_counter() - began)
        print(f"\nsync session exec `true`: median {statistics.median(rtt) * 1000:.1f} ms (n=30)")

        # Printed, not asserted (speed is `make bench`'s); that the stream ends
        # with its command, not later, is checked by the neighbour still running.
        neighbour = run("sleep 300", run_async=True)
        lag = []
        for _ in range(5):
            cmd = run("sleep 0.3; echo x", run_async=True)
            began = time.perf_counter()
            asyncio.run(p.get_session_command_logs_async("figures", cmd.cmd_id, print, print))
            lag.append(time.perf_counter() - began - 0.3)
            assert p.get_session_command("figures", cmd.cmd_id).exit_code == 0
        print(f"follow closes {statistics.median(lag) * 1000:.0f} ms after a 0.3 s command")
        assert p.get_session_command("figures", neighbour.cmd_id).exit_code is None

        size = 50_000_000
        cmd = run(f"head -c {size} /dev/zero | tr '\\0' y", run_async=True)
        got = [0]
        began = time.perf_counter()
        asyncio.run(
            p.get_session_command_logs_async(
                "figures", cmd.cmd_id, lambda s: got.__setitem__(0, got[0] + len(s)), print
            )
        )
        took = time.perf_counter() - began
        print(f"followed {got[0] / 1e6:.0f} MB in {took:.2f} s ({got[0] / took / 1e6:.0f} MB/s)")
        assert got[0] == size
    finally:
        p.delete_session("figures")
