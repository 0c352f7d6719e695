"""A few sandboxes started ahead of time, so that a create finds its agent running.

Starting an agent (bubblewrap, cgroups, a Python interpreter importing the
agent) costs about 100 ms; adopting one that is already idle costs two
renames. The pool must be invisible to users: a pooled sandbox is only given
to a request whose shape (limits, environment, language, working directory)
is exactly the one it was started with, and never to one with an entrypoint.
Anything else starts cold, as without a pool. Nothing ever ran in a pooled
sandbox, so adopting it gives the same clean workspace a cold start would.

The pool learns its shape from the requests (the last poolable one), refills
two sandboxes at a time, and only while no cold start is in flight, so that
it never competes with a burst of creates for the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from cove.runtime.base import RuntimeHandle, SandboxSpec

log = logging.getLogger("cove.runtime")
REFILL_PARALLEL = 2
CLOSE_GRACE = 20.0  # seconds a pre-start in progress may take to finish at close


@dataclass(frozen=True)
class Shape:
    """Everything a started sandbox has baked in, besides its id."""

    cpus: float
    memory_bytes: int
    pids: int
    env: tuple[tuple[str, str], ...]
    language: str
    workdir: str | None
    max_output_bytes: int
    max_log_bytes: int
    disk_bytes: int

    @classmethod
    def of(cls, spec: SandboxSpec) -> Shape | None:
        if spec.entrypoint or spec.image:  # an entrypoint or own root: never pooled
            return None
        return cls(
            spec.cpus,
            spec.memory_bytes,
            spec.pids,
            tuple(sorted(spec.env.items())),
            spec.language,
            spec.workdir,
            spec.max_output_bytes,
            spec.max_log_bytes,
            spec.disk_bytes,
        )


class WarmPool:
    def __init__(
        self,
        size: int,
        prestart: Callable[[SandboxSpec], Awaitable[RuntimeHandle]],
        discard: Callable[[RuntimeHandle], Awaitable[None]],
    ) -> None:
        self.size = max(0, size)
        self._prestart = prestart
        self._discard = discard
        self._shape: Shape | None = None
        self._template: SandboxSpec | None = None
        self._ready: list[RuntimeHandle] = []
        self._starting: set[str] = set()
        self._refillers: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def ids(self) -> set[str]:
        """Sandbox ids the pool holds (not leftovers, though no record names them)."""
        return {h.sandbox_id for h in self._ready} | self._starting

    def ready(self) -> list[str]:
        """Ids of the pooled sandboxes started and waiting (a take gets the first)."""
        return [h.sandbox_id for h in self._ready]

    def take(self, spec: SandboxSpec) -> tuple[RuntimeHandle, SandboxSpec] | None:
        """A started sandbox of exactly `spec`'s shape, if one is ready, and the spec it
        was started with (its shape is `spec`'s; its network policy may differ); refills
        behind."""
        if not self.size:
            return None
        shape = Shape.of(spec)
        if shape is None:
            return None
        if shape != self._shape:
            # Nobody's name or link group: a pooled sandbox joins one at adoption.
            self._shape, self._template = shape, replace(spec, id="", name="", link_group=None)
            stale, self._ready = self._ready, []
            for h in stale:
                self._spawn_discard(h)
        handle = self._ready.pop(0) if self._ready else None
        # Two at a time: one start is mostly one core's work, and there are
        # usually at least two; a single refiller fell behind a client that
        # creates sandboxes back to back.
        while len(self._refillers) < min(REFILL_PARALLEL, self.size):
            task = asyncio.create_task(self._refill())
            self._refillers.add(task)
            task.add_done_callback(self._refillers.discard)
        if handle is None:
            return None
        # Every ready sandbox was started from the current template: a shape
        # change empties the pool, and a start from an older one is discarded.
        assert self._template is not None  # it made `handle`
        return handle, self._template

    @contextlib.asynccontextmanager
    async def foreground(self) -> AsyncIterator[None]:
        """Mark a cold start in flight: refilling waits until there is none."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    def _short(self) -> bool:
        """Whether the pool holds (started or starting) fewer than its size."""
        return self._template is not None and len(self._ready) + len(self._starting) < self.size

    async def _refill(self) -> None:
        while True:
            await self._idle.wait()
            # Checked after the wait, not before: the other refiller, waiting
            # beside this one, may have filled the gap meanwhile (a pool of 2
            # held 3 once both had seen it one short).
            if not self._short():
                return
            template = self._template
            assert template is not None  # `_short` saw it
            spec = replace(template, id=str(uuid.uuid4()))
            self._starting.add(spec.id)
            try:
                handle = await self._prestart(spec)
            except Exception:  # the next request starts cold and tries again
                log.exception("warm pool: pre-starting a sandbox failed")
                return
            finally:
                self._starting.discard(spec.id)
            if template is self._template:
                self._ready.append(handle)
            else:  # the shape changed meanwhile
                self._spawn_discard(handle)

    def _spawn_discard(self, handle: RuntimeHandle) -> None:
        """Destroy a pooled sandbox in the background (a shape change made it useless)."""
        task = asyncio.create_task(self._discard_logged(handle))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _discard_logged(self, handle: RuntimeHandle) -> None:
        """Destroy a pooled sandbox; a failure leaks it, so it is logged, never raised."""
        try:
            await self._discard(handle)
        except Exception:
            log.exception(
                "warm pool: discarding sandbox %s failed; its processes or files may be left",
                handle.sandbox_id,
            )

    async def close(self) -> None:
        """Destroy every pooled sandbox (a server shutting down leaves none behind)."""
        self.size = 0
        for task in list(self._refillers):
            # Let a pre-start in progress finish (cancelling it would leave a
            # half-made sandbox), then stop the loop. `_refill` logs its own
            # failures, so the task can only end cancelled or by the timeout.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ready, self._ready = self._ready, []
        for h in ready:
            await self._discard_logged(h)
        # Background discards log their own failures (`_discard_logged`).
        await asyncio.gather(*self._background)
