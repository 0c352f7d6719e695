"""The evaluation-harness workload: N tasks at once, each in a sandbox of its own.

A task is what an evaluation harness does per sample: create a sandbox,
write a small project into it (one `upload_files` call), run its unittest
suite, read the verdict (exit status and unittest's summary), delete the
sandbox. The baseline is the same N test runs as bare host processes at
once (a fresh directory each, the same files, `python3 -m unittest`), in
the same run. Two clients drive Cove: the bench's (plain httpx, async, one
pool) and the official SDK's `AsyncDaytona`, as a harness would use it.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.baselines import HOST_PYTHON
from bench.client import Cove, _check, acreate
from bench.stats import Row, Summary

RATIO_TARGET = 2.0

PROJECT: dict[str, str] = {
    "proj/calc/__init__.py": "",
    "proj/calc/ops.py": (
        "def add(a, b):\n    return a + b\n\n\n"
        "def mean(xs):\n    return sum(xs) / len(xs)\n\n\n"
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
        "    return a\n"
    ),
    "proj/test_ops.py": (
        "import unittest\n\nfrom calc.ops import add, fib, mean\n\n\n"
        "class Ops(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
        "    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n\n"
        "    def test_fib(self):\n        self.assertEqual(fib(30), 832040)\n\n"
        "    def test_fib_zero(self):\n        self.assertEqual(fib(0), 0)\n\n\n"
        'if __name__ == "__main__":\n    unittest.main()\n'
    ),
}
COMMAND = "cd proj && python3 -m unittest 2>&1"
STEPS = ("create", "upload", "test run", "delete")


def _passed(exit_code: int, output: str) -> bool:
    return exit_code == 0 and "Ran 4 tests" in output and "OK" in output


def _multipart() -> tuple[bytes, str]:
    """Daytona's bulk-upload body for PROJECT (what the SDK's `upload_files` sends)."""
    boundary = uuid.uuid4().hex
    parts = []
    for i, (path, text) in enumerate(PROJECT.items()):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files[{i}].path"\r\n\r\n'
            f"{path}\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files[{i}].file"; filename="f{i}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n{text}\r\n"
        )
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), boundary


async def _task_httpx(client: Any, body: bytes, boundary: str) -> dict[str, float]:
    """One task; its milliseconds per step (create, upload, test, delete) and in all."""
    marks = [time.perf_counter()]
    sid = await acreate(client)
    marks.append(time.perf_counter())
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    _check(
        await client.post(f"/toolbox/{sid}/files/bulk-upload", content=body, headers=headers),
        "upload",
    )
    marks.append(time.perf_counter())
    r = _check(
        await client.post(f"/toolbox/{sid}/process/execute", json={"command": COMMAND}), "exec"
    )
    marks.append(time.perf_counter())
    out = r.json()
    _check(await client.delete(f"/api/sandbox/{sid}"), "delete")
    marks.append(time.perf_counter())
    if not _passed(out.get("exitCode", -1), out.get("result", "")):
        raise RuntimeError(f"task failed: {out!r}")
    steps = dict(zip(STEPS, (b - a for a, b in itertools.pairwise(marks)), strict=True))
    return {k: v * 1000 for k, v in {**steps, "task": marks[-1] - marks[0]}.items()}


async def _task_sdk(daytona: Any) -> dict[str, float]:
    from daytona import FileUpload

    t0 = time.perf_counter()
    sandbox = await daytona.create(timeout=600)
    await sandbox.fs.upload_files([FileUpload(t.encode(), p) for p, t in PROJECT.items()])
    res = await sandbox.process.exec(COMMAND)
    await sandbox.delete()
    if not _passed(res.exit_code, res.result):
        raise RuntimeError(f"task failed: {res!r}")
    return {"task": (time.perf_counter() - t0) * 1000}


def run_httpx(cove: Cove, n: int) -> tuple[float, list[dict[str, float]]]:
    body, boundary = _multipart()

    async def go() -> tuple[float, list[dict[str, float]]]:
        async with cove.aclient(n) as client:
            t0 = time.perf_counter()
            each = await asyncio.gather(*(_task_httpx(client, body, boundary) for _ in range(n)))
            return (time.perf_counter() - t0) * 1000, list(each)

    return asyncio.run(go())


def run_sdk(cove: Cove, n: int) -> tuple[float, list[dict[str, float]]]:
    from daytona import AsyncDaytona, DaytonaConfig

    async def go() -> tuple[float, list[dict[str, float]]]:
        config = DaytonaConfig(api_key=cove.server.key, api_url=cove.server.api_url)
        async with AsyncDaytona(config) as daytona:
            t0 = time.perf_counter()
            each = await asyncio.gather(*(_task_sdk(daytona) for _ in range(n)))
            return (time.perf_counter() - t0) * 1000, list(each)

    return asyncio.run(go())


def run_host(n: int) -> float:
    """The same n test runs as bare host processes at once, files written first by each."""

    async def one(root: Path, i: int) -> None:
        d = root / str(i)
        for path, text in PROJECT.items():
            f = d / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
        proc = await asyncio.create_subprocess_shell(
            COMMAND.replace("python3", HOST_PYTHON),
            cwd=d,
            stdout=asyncio.subprocess.PIPE,
            executable="/bin/sh",
        )
        out, _ = await proc.communicate()
        if not _passed(proc.returncode or 0, out.decode()):
            raise RuntimeError(f"host task failed: {out!r}")

    async def go(root: Path) -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(root, i) for i in range(n)))
        return (time.perf_counter() - t0) * 1000

    with tempfile.TemporaryDirectory(prefix="cove-bench-eval-") as tmp:
        return asyncio.run(go(Path(tmp)))


def measure(cove: Cove, n: int, runs: int, sdk: bool = True) -> list[Row]:
    """Wall time of n tasks at once (median of `runs`), per client, against the host's."""
    host = [run_host(n) for _ in range(runs)]
    rows = []
    clients: list[tuple[str, Any]] = [("httpx", run_httpx)]
    if sdk:
        clients.append(("official SDK", run_sdk))
    for name, fn in clients:
        walls: list[float] = []
        each: list[dict[str, float]] = []
        for _ in range(runs):
            wall, per = fn(cove, n)
            walls.append(wall)
            each += per
        tasks = Summary.of([t["task"] for t in each], "ms").cell()
        # Where a task's time went (the measured cause of a miss): each step's median.
        steps = ", ".join(
            f"{k} {Summary.of([t[k] for t in each], 'ms').median:.0f}"
            for k in STEPS
            if k in each[0]
        )
        row = Row(
            f"eval{n}_{name.split()[-1].lower()}",
            f"Evaluation harness: {n} tasks at once, each in its own sandbox "
            f"(create, upload a project, unittest, verdict, delete), client: {name}",
            Summary.of(walls, "ms"),
            Summary.of(host, "ms"),
            f"the same {n} `python3 -m unittest` runs as bare host processes at once",
            f"<= {RATIO_TARGET:g}x the host's",
            note=f"per task within the batch: {tasks}"
            + (f"; median ms per step: {steps}" if steps else ""),
            samples=walls,
            baseline_samples=host,
        )
        row.met = row.ratio is not None and row.ratio <= RATIO_TARGET
        rows.append(row)
    return rows
