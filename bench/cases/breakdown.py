"""Where the time goes: the cold start and the exec path, step by step.

Generated with the rest of the report, from the same run:

- cold start: the control plane's own phase records (`COVE_PHASE_LOG=1`,
  `cove.runtime.local.phases`) of the creates the cold time-to-interactive
  row made, paired run by run with that row's samples; what the records do
  not cover (HTTP, auth, store, uid and directories, the first exec) is the
  remainder of each run.
- exec: the same `true` sent through the server and straight to the agent's
  own unix socket (the difference is the proxy hop), and on the host the
  pieces the agent adds to a bare spawn: `/bin/sh -c true` (exec runs
  through the shell, as Daytona's does) and making and removing one cgroup
  (the agent makes one per command).
- the agent's start: the host's python3 starting, and importing the agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from pathlib import Path

from bench import baselines
from bench.client import Cove, RawConnection
from bench.stats import Row, Summary, timed
from cove.runtime.local import default_sandbox_root
from cove.runtime.local.phases import parse

COLD = "Where the time goes: cold start (create + first `true`, no pool)"
EXEC = "Where the time goes: exec of `true`"
FREEZER = Path("/sys/fs/cgroup/freezer")


def _row(section: str, key: str, title: str, samples: list[float], how: str) -> Row:
    return Row(key, title, Summary.of(samples, "ms"), note=how, section=section, samples=samples)


def cold(cove: Cove, tti: Row, output_from: int) -> list[Row]:
    """Rows from the phase records the server printed since `output_from`."""
    # Printed before each create answered, but read from the server's pipe by
    # a thread of its own: wait (with a deadline) until every one has arrived.
    deadline = time.monotonic() + 10
    while True:
        records = parse(cove.server.output[output_from:], "start")
        if len(records) >= len(tti.samples) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # The row dropped its first create (the server's warm-up): drop its record too.
    records = records[-len(tti.samples) :] if tti.samples else []
    if not records:
        return [Row("bd_cold", COLD, None, note="no phase records (COVE_PHASE_LOG)", section=COLD)]
    rows = []
    for name in records[0]:
        vals = [r.get(name, 0.0) for r in records]
        rows.append(
            _row(COLD, f"bd_cold_{name}", name, vals, "control plane's phase record, per start")
        )
    rest = [t - sum(r.values()) for t, r in zip(tti.samples, records, strict=False)]
    rows.append(
        _row(
            COLD,
            "bd_cold_rest",
            "the rest: HTTP, auth, store, uid and dirs, first exec",
            rest,
            "the run's time to interactive minus its phases",
        )
    )
    return rows


def largest(parts: list[Row]) -> str:
    """The step with the largest median, for a row's note: the measured cause of a miss."""
    measured = [r for r in parts if r.cove is not None]
    if not measured:
        return ""
    top = max(measured, key=lambda r: r.cove.median if r.cove else 0.0)
    assert top.cove is not None
    return f"largest step: {top.title} ({top.cove.median:.1f} ms median, see the breakdown)"


def _agent_socket(cove: Cove, sid: str) -> str | None:
    # The local backend's layout: <root>/<instance: hash of the data dir>/<id>/agent.sock.
    instance = hashlib.sha256(str(cove.server.data_dir.resolve()).encode()).hexdigest()[:12]
    path = default_sandbox_root(cove.server.data_dir) / instance / sid / "agent.sock"
    return str(path) if os.access(path, os.R_OK | os.W_OK) else None


def _cgroup_cost(runs: int) -> list[float] | None:
    """mkdir + rmdir of one child cgroup, as the agent does per command (root only)."""
    if os.geteuid() != 0 or not FREEZER.is_dir():
        return None
    parent = FREEZER / f"cove-bench-{os.getpid()}"
    parent.mkdir(exist_ok=True)
    child = parent / "c"

    def once() -> None:
        child.mkdir()
        child.rmdir()

    try:
        return timed(once, runs)
    finally:
        parent.rmdir()


def exec_path(cove: Cove, sid: str, through_server: Row, runs: int) -> list[Row]:
    rows = []
    if through_server.samples:
        rows.append(
            _row(
                EXEC,
                "bd_exec_server",
                "through the server (client -> server -> agent)",
                through_server.samples,
                "the exec row's samples",
            )
        )
    sock = _agent_socket(cove, sid)
    if sock is not None:
        conn = RawConnection(0, "", unix=sock)

        async def once() -> None:
            status, body = await conn.post("/process/execute", {"command": "true"})
            if status != 200:
                raise RuntimeError(f"agent exec: HTTP {status} {body[:200]!r}")

        with asyncio.Runner() as runner:
            direct = timed(lambda: runner.run(once()), runs, warmup=5)
            conn.close()
        rows.append(
            _row(
                EXEC,
                "bd_exec_agent",
                "straight to the agent's socket (agent HTTP, cgroup, spawn, wait)",
                direct,
                "one keep-alive connection to the sandbox's unix socket",
            )
        )
        if through_server.cove:
            hop = through_server.cove.median - Summary.of(direct, "ms").median
            rows.append(
                Row(
                    "bd_exec_hop",
                    "the server's hop (auth, lookup, proxy)",
                    Summary.of([hop], "ms"),
                    note="difference of the two medians above",
                    section=EXEC,
                )
            )
    sh = timed(lambda: subprocess.run(["/bin/sh", "-c", "true"], check=True), runs)
    rows.append(
        _row(EXEC, "bd_exec_sh", "`/bin/sh -c true` spawned on the host", sh, "subprocess.run")
    )
    cg = _cgroup_cost(runs)
    if cg is not None:
        rows.append(
            _row(
                EXEC,
                "bd_exec_cgroup",
                "one command cgroup made and removed (host, v1 freezer)",
                cg,
                "mkdir + rmdir",
            )
        )
    return rows


def agent_start(runs: int) -> list[Row]:
    py = baselines.HOST_PYTHON
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    # The flags the agent starts with (bwrap.command): no site, no user site.
    bare = timed(lambda: subprocess.run([py, "-s", "-S", "-c", "pass"], check=True), runs)
    # The agent process leaves `ssl` out (cove.agent.app); so does this import.
    code = "import sys; sys.modules['ssl'] = None; import cove.agent.app"
    imp = timed(lambda: subprocess.run([py, "-s", "-S", "-c", code], check=True, env=env), runs)
    return [
        _row(COLD, "bd_py_start", "host python3 -s -S start (part of agent ready)", bare, py),
        _row(
            COLD,
            "bd_py_agent",
            "host python3 -s -S start + `import cove.agent.app` (without ssl, as the agent)",
            imp,
            # Not the harness's own interpreter, whose path (a checkout's
            # virtualenv) is this machine's and stays out of the report.
            f"{py} on the host, the agent's own interpreter; not the harness's virtualenv",
        ),
    ]
