"""Per-sandbox resource metrics: readings from the backend, a bounded history on disk.

A sampler task reads every started sandbox's use (cgroups and workspace, via
the runtime backend) each `interval` seconds and appends one sample to that
sandbox's history file, `<data>/metrics/<id>.jsonl`. A history keeps at most
`keep` samples: past twice that, the file is rewritten with the newest
`keep` (so appends stay cheap and the file stays bounded). A sandbox's file
is removed when the sandbox is deleted, and files of unknown sandboxes at
start-up.

CPU use is a rate: the CPU time used since the previous reading of the same
sandbox run, over the wall time between them, as a % of the sandbox's CPU
limit (Daytona's `cpuUsedPct`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cove.runtime.base import ResourceUsage
from cove.server.records import SandboxRecord, SandboxState
from cove.server.sandboxes import SandboxService
from cove.settings import GiB
from cove.wire.protocol import SystemMetrics

log = logging.getLogger("cove.server")

CPU_WINDOW = 0.1  # seconds a first CPU reading is measured across


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (a `Z` or an offset; naive means UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@dataclass
class _CpuMark:
    """The previous CPU reading of one sandbox run (cpu_seconds resets on restart)."""

    at: float
    cpu_seconds: float


class MetricsHistory:
    """The on-disk sample files: append, read a time range, drop."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.dir = directory
        self.keep = keep
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lines: dict[str, int] = {}

    def _path(self, sandbox_id: str) -> Path:
        return self.dir / f"{sandbox_id}.jsonl"

    def append(self, sandbox_id: str, sample: SystemMetrics, at: float) -> None:
        path = self._path(sandbox_id)
        if sandbox_id not in self._lines:
            self._lines[sandbox_id] = len(self._read_lines(path))
        with open(path, "a") as f:
            # "t": the exact time, for range queries finer than timestampUnix's seconds.
            line = {"t": at, **sample.to_wire()}
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._lines[sandbox_id] += 1
        if self._lines[sandbox_id] > 2 * self.keep:
            self._compact(path)
            self._lines[sandbox_id] = self.keep

    def _compact(self, path: Path) -> None:
        lines = self._read_lines(path)[-self.keep :]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, path)  # readers see the old file or the new one, never half

    @staticmethod
    def _read_lines(path: Path) -> list[str]:
        try:
            with open(path) as f:
                return [line for line in f if line.endswith("\n")]  # a torn last line: skip
        except FileNotFoundError:
            return []

    def read(self, sandbox_id: str, start: float, end: float) -> list[SystemMetrics]:
        out = []
        for line in self._read_lines(self._path(sandbox_id)):
            data = json.loads(line)
            if start <= data["t"] <= end:
                out.append(SystemMetrics.from_wire(data, "sample"))
        return out

    def drop(self, sandbox_id: str) -> None:
        self._lines.pop(sandbox_id, None)
        with contextlib.suppress(FileNotFoundError):
            self._path(sandbox_id).unlink()

    def drop_unknown(self, known: set[str]) -> None:
        for path in self.dir.glob("*.jsonl"):
            if path.stem not in known:
                path.unlink(missing_ok=True)


class MetricsSampler:
    def __init__(self, service: SandboxService, history: MetricsHistory, interval: float) -> None:
        self.service = service
        self.history = history
        self.interval = interval
        self._marks: dict[str, _CpuMark] = {}
        self._task: asyncio.Task[None] | None = None
        service.on_delete.append(self._forget)

    def _forget(self, sandbox_id: str) -> None:
        self._marks.pop(sandbox_id, None)
        self.history.drop(sandbox_id)

    def start(self) -> None:
        self.history.drop_unknown({r.id for r in self.service.store.list()})
        if self.interval > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reading(self, r: SandboxRecord, *, record: bool = False) -> SystemMetrics | None:
        """The sandbox's use now; None unless it runs. `record` moves the CPU mark on."""
        handle = self.service.handle(r)
        usage = await self.service.backend.usage(handle)
        if usage is None:
            return None
        now = time.time()
        mark = self._marks.get(r.id)
        if mark is None or usage.cpu_seconds < mark.cpu_seconds:
            # No earlier reading of this run (first one, or the sandbox restarted):
            # a CPU rate needs two, so measure across a short window.
            mark = _CpuMark(now, usage.cpu_seconds)
            await asyncio.sleep(CPU_WINDOW)
            usage = await self.service.backend.usage(handle)
            if usage is None:
                return None
            now = time.time()
        return self._sample(r, usage, mark, now, record)

    def _sample(
        self, r: SandboxRecord, u: ResourceUsage, mark: _CpuMark, now: float, record: bool
    ) -> SystemMetrics:
        wall = now - mark.at
        pct = 0.0
        if wall > 0 and u.cpus > 0:
            pct = max(0.0, min(100.0, (u.cpu_seconds - mark.cpu_seconds) / wall / u.cpus * 100))
        if record:
            self._marks[r.id] = _CpuMark(now, u.cpu_seconds)
        disk_total = r.spec.disk * GiB
        return SystemMetrics(
            cpu_count=max(1, round(u.cpus)),
            cpu_used_pct=round(pct, 2),
            mem_total=u.memory_limit,
            # The whole sandbox, its agent included (it can pass mem_total by the
            # agent's reserve): what the sandbox costs the host.
            mem_used=u.memory_bytes,
            mem_cache=u.cache_bytes,
            disk_total=disk_total,
            disk_used=u.disk_used,
            disk_free=max(0, disk_total - u.disk_used),
            timestamp=iso(now),
            timestamp_unix=int(now),
        )

    async def sample_all(self) -> int:
        """One sample of every started sandbox; returns how many were taken."""
        taken = 0
        for r in self.service.store.list():
            if r.state != SandboxState.STARTED:
                continue
            sample = await self.reading(r, record=True)
            # A delete may have happened while it was read: never recreate its file.
            if sample is None or self.service.store.get_any(r.id) is None:
                continue
            self.history.append(r.id, sample, parse_iso(sample.timestamp))
            taken += 1
        return taken

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sample_all()
            except Exception:
                log.exception("metrics sampling failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
