"""2-3. Exec round trip of `true`, and stateless `code_run` of python `print(1)`."""

from __future__ import annotations

import asyncio

from bench import baselines
from bench.client import Cove, RawConnection
from bench.stats import Row, Summary, timed

# Issue 17's (round 2); round 1 asked for 5 ms.
EXEC_TARGET_MS = 2.5
CODE_RUN_TARGET_RATIO = 1.3


def exec_rtt(cove: Cove, sid: str, runs: int) -> Row:
    conn = RawConnection(cove.server.port, cove.server.key)
    path = f"/toolbox/{sid}/process/execute"

    async def once() -> None:
        status, body = await conn.post(path, {"command": "true"})
        if status != 200:
            raise RuntimeError(f"exec: HTTP {status} {body[:200]!r}")

    with asyncio.Runner() as runner:
        samples = timed(lambda: runner.run(once()), runs, warmup=5)
        conn.close()
    with_httpx = timed(lambda: cove.exec(sid, "true"), max(runs // 3, 10), warmup=3)
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
        note=(
            "client: one keep-alive HTTP/1.1 connection; through an httpx.Client instead: "
            + Summary.of(with_httpx, "ms").cell()
        ),
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
    # Where the time goes: the same interpreter start through a plain exec.
    plain = timed(lambda: cove.exec(sid, "/usr/bin/python3 -c 'print(1)'"), max(runs // 2, 10))
    row = Row(
        "code_run",
        "Stateless `code_run` of python `print(1)`",
        Summary.of(samples, "ms"),
        Summary.of(base, "ms"),
        f"`{baselines.HOST_PYTHON} -c 'print(1)'` on the host",
        f"<= {CODE_RUN_TARGET_RATIO:g}x the host's python3 start",
        note="for comparison, `/usr/bin/python3 -c 'print(1)'` through exec: "
        + Summary.of(plain, "ms").cell(),
        samples=samples,
        baseline_samples=base,
    )
    row.met = row.ratio is not None and row.ratio <= CODE_RUN_TARGET_RATIO
    return row
