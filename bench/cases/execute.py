"""2-3. Exec round trip of `true`, and stateless `code_run` of python `print(1)`."""

from __future__ import annotations

from bench import baselines
from bench.client import Cove
from bench.stats import Row, Summary, timed

EXEC_TARGET_MS = 5.0
CODE_RUN_TARGET_RATIO = 1.3


def exec_rtt(cove: Cove, sid: str, runs: int) -> Row:
    samples = timed(lambda: cove.exec(sid, "true"), runs, warmup=5)
    base = baselines.host_true(runs)
    cv = Summary.of(samples, "ms")
    return Row(
        "exec",
        "Exec round trip of `true` (warm sandbox, through the server)",
        cv,
        Summary.of(base, "ms"),
        '`subprocess.run(["true"])` on the host',
        f"p50 <= {EXEC_TARGET_MS:g} ms",
        cv.median <= EXEC_TARGET_MS,
        samples=samples,
        baseline_samples=base,
    )


def code_run(cove: Cove, sid: str, runs: int) -> Row:
    def once() -> None:
        out = cove.code_run(sid, "print(1)")
        if out.get("result") != "1\n" or out.get("exitCode") != 0:
            raise RuntimeError(f"code_run gave {out!r}")

    samples = timed(once, runs, warmup=3)
    base = baselines.host_python(runs)
    row = Row(
        "code_run",
        "Stateless `code_run` of python `print(1)`",
        Summary.of(samples, "ms"),
        Summary.of(base, "ms"),
        f"`{baselines.HOST_PYTHON} -c 'print(1)'` on the host",
        f"<= {CODE_RUN_TARGET_RATIO:g}x the host's python3 start",
        samples=samples,
        baseline_samples=base,
    )
    row.met = row.ratio is not None and row.ratio <= CODE_RUN_TARGET_RATIO
    return row
