"""What an idle interpreter context costs: start-up time and memory.

Run with `-s` to see the figures: `.venv/bin/pytest -q -s tests/e2e/test_interpreter_cost.py`.
The bounds are loose; they catch a worker that starts importing heavy
packages, not noise.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

N = 20
# Resident and proportional memory of every interpreter worker, in KiB.
MEMORY_SCRIPT = r"""
for p in $(pgrep -f "[i]nterp_worker[.]py"); do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$p/status)
  pss=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null)
  echo "$rss ${pss:-0}"
done
"""


def _workers(sandbox: Any) -> list[tuple[int, int]]:
    out = sandbox.process.exec(MEMORY_SCRIPT).result
    return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines() if line)]


@pytest.mark.timeout(300)
def test_idle_context_cost(sandbox: Any) -> None:
    ci = sandbox.code_interpreter
    assert _workers(sandbox) == []  # the default context starts lazily
    start = time.monotonic()
    ci.run_code("pass")
    first_default = time.monotonic() - start
    start = time.monotonic()
    ci.run_code("pass")
    warm_run = time.monotonic() - start

    contexts, creates = [], []
    try:
        for _ in range(N):
            start = time.monotonic()
            contexts.append(ci.create_context())
            creates.append(time.monotonic() - start)
        workers = _workers(sandbox)
        assert len(workers) == N + 1
        rss = statistics.median(r for r, _ in workers) / 1024
        pss = statistics.median(p for _, p in workers) / 1024
        print(
            f"\nidle context: create median {statistics.median(creates) * 1000:.0f} ms "
            f"(max {max(creates) * 1000:.0f} ms); first default-context run "
            f"{first_default * 1000:.0f} ms, warm run {warm_run * 1000:.0f} ms; "
            f"worker RSS median {rss:.1f} MiB, PSS median {pss:.1f} MiB "
            f"({N + 1} workers)"
        )
        assert rss < 40  # memory, not speed: a load does not change it
    finally:
        for ctx in contexts:
            ci.delete_context(ctx)
    assert len(_workers(sandbox)) == 1  # deleting a context ends its worker
