"""What a user's program sees: exec and run_code through the SDKs users have.

The same warm sandbox as the exec rows, driven by the official `daytona`
SDK (sync) and by the Cove SDK (sync), each call as a program makes it; the
rows beside them (exec through one raw connection, and through httpx in its
note; the interpreter over a hand-made WebSocket) are the bench's own
clients. Targets are issue 17's: official <= 3 ms for both calls, Cove SDK
<= 2 ms exec and <= 1.5 ms run_code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import baselines
from bench.client import Cove
from bench.stats import Row, Summary, timed

TARGETS = {
    ("official SDK", "exec"): 3.0,
    ("official SDK", "run_code"): 3.0,
    ("Cove SDK", "exec"): 2.0,
    ("Cove SDK", "run_code"): 1.5,
}


def _calls(sandbox: Any) -> dict[str, Callable[[], None]]:
    def exec_true() -> None:
        r = sandbox.process.exec("true")
        if r.exit_code != 0:
            raise RuntimeError(f"exec gave {r!r}")

    def run_code() -> None:
        r = sandbox.code_interpreter.run_code("x = globals().get('x', 0) + 1")
        if r.error is not None:
            raise RuntimeError(f"run_code gave {r!r}")

    return {"exec": exec_true, "run_code": run_code}


def measure(cove: Cove, sid: str, runs: int) -> list[Row]:
    from daytona import Daytona, DaytonaConfig

    from cove.sdk import Cove as CoveClient

    base = baselines.host_true(runs)
    rows = []
    official = Daytona(DaytonaConfig(api_key=cove.server.key, api_url=cove.server.api_url))
    with CoveClient(api_url=cove.server.api_url, api_key=cove.server.key) as ours:
        for client, sandbox in (("official SDK", official.get(sid)), ("Cove SDK", ours.get(sid))):
            for call, fn in _calls(sandbox).items():
                samples = timed(fn, runs, warmup=5)
                target = TARGETS[(client, call)]
                what = '`exec("true")`' if call == "exec" else '`run_code("x += 1")`'
                row = Row(
                    f"sdk_{call}_{client.split()[0].lower()}",
                    f"{client}: {what} on a warm sandbox",
                    Summary.of(samples, "ms"),
                    Summary.of(base, "ms"),
                    '`subprocess.run(["true"])` on the host',
                    f"p50 <= {target:g} ms",
                    samples=samples,
                    baseline_samples=base,
                )
                row.met = row.cove is not None and row.cove.median <= target
                rows.append(row)
    return rows
