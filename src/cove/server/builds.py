"""Image builds the control plane runs: one job per sandbox or snapshot, with a log.

A job's log is a file (`<data>/build-logs/<key>.log`), so it can be read
from the start by any number of followers while the build runs, and after
it ended. Followers wait on the job's condition, not on a timer. The job
and its log last as long as what was built for (`forget` when the sandbox
or snapshot is deleted): kept for ever, every image create left a file on
disk and a job in memory (found by `make soak`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cove.images.builder import Builder
from cove.images.store import Image
from cove.wire.errors import CoveError, NotFound

log = logging.getLogger("cove.server")


# Log lines that only real work writes: a new layer, a pull unpacked, a base
# built. A build without any was served from the cache.
WORK_MARKS = (" ---> layer ", ": unpacked", ": mmdebstrap ")


@dataclass
class BuildJob:
    key: str
    path: Path
    task: asyncio.Task[Image] | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    done: bool = False
    worked: bool = False  # it built, pulled or unpacked something (not all from cache)

    def write(self, line: str) -> None:
        if any(mark in line for mark in WORK_MARKS):
            self.worked = True
        stamp = time.strftime("%H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {line}\n")
        self._notify()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self.changed:
                self.changed.notify_all()

        with contextlib.suppress(RuntimeError):  # no loop: nobody can be waiting
            asyncio.get_running_loop().create_task(wake())


class BuildService:
    def __init__(
        self, builder: Builder, logs_dir: Path, after_build: Callable[[], None] | None = None
    ) -> None:
        self.builder = builder
        self.after_build = after_build  # e.g. evict old images (blocking: run in a thread)
        # The ids of images sandboxes run on (never evicted); set by the app.
        self.in_use: Callable[[], set[str]] = set
        self.logs_dir = logs_dir
        logs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, BuildJob] = {}

    def start(
        self,
        key: str,
        dockerfile: str,
        context: Path | None = None,
        first_lines: tuple[str, ...] = (),
        fetch: Callable[[Path], Awaitable[None]] | None = None,
    ) -> BuildJob:
        """Start building `dockerfile` in the background; its log is under `key`.

        `fetch` makes the context first (the object store's uploads): it fills a
        directory that does not exist yet, and the directory goes after the build."""
        job = BuildJob(key, self.logs_dir / f"{key}.log")
        job.path.write_text("")
        for line in first_lines:
            job.write(line)
        self.jobs[key] = job

        async def run() -> Image:
            work = None
            try:
                ctx = context
                if fetch is not None:
                    work = self.builder.store.scratch("context")
                    ctx = work / "context"
                    job.write("fetching the build context from the object store")
                    await fetch(ctx)
                image = await self.builder.build(dockerfile, job.write, context=ctx)
                if self.after_build is not None:
                    await asyncio.to_thread(self.after_build)
                return image
            except CoveError as err:
                job.write(f"ERROR: {err.message}")
                raise
            except Exception as exc:
                log.exception("build %s failed", key)
                job.write(f"ERROR: {exc}")
                raise
            finally:
                if work is not None:
                    await asyncio.to_thread(shutil.rmtree, work, True)
                job.done = True
                job._notify()

        job.task = asyncio.create_task(run())
        return job

    def forget(self, key: str) -> None:
        """Drop a job and its log: the sandbox or snapshot it built for is gone.

        A build still running keeps its log until it ends (its task writes
        there); a follower with the file open reads on after the unlink."""
        job = self.jobs.pop(key, None)
        path = self.logs_dir / f"{key}.log"
        if job is not None and job.task is not None and not job.task.done():
            job.task.add_done_callback(lambda _: path.unlink(missing_ok=True))
            return
        path.unlink(missing_ok=True)

    def log_path(self, key: str) -> Path:
        path = self.logs_dir / f"{key}.log"
        if not path.exists():
            raise NotFound(f"no build log for {key}")
        return path

    async def follow(self, key: str, follow: bool) -> AsyncIterator[bytes]:
        """The log from its start; with `follow`, until the build ends."""
        path = self.log_path(key)
        job = self.jobs.get(key)
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if chunk:
                    yield chunk
                    continue
                if not follow or job is None or job.done:
                    if job is not None and job.done and (rest := f.read()):
                        yield rest
                    return
                async with job.changed:
                    # Checked under the lock a writer's wake-up takes: none is missed.
                    if os.path.getsize(path) == f.tell() and not job.done:
                        await job.changed.wait()
