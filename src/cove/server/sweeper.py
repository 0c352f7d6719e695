"""Auto-stop of idle sandboxes and auto-delete of stopped ones (Daytona's intervals).

`autoStopInterval` (minutes, 0 = never): a started sandbox with no toolbox or
lifecycle activity for that long is stopped. `autoDeleteInterval` (minutes,
negative = never, 0 = as soon as it stops): a stopped sandbox is deleted
that long after it stopped. A TTL (`set_ttl`) deletes a sandbox at its
deadline whatever its state. The sweeper sleeps until the earliest deadline
(or until woken by a lifecycle change), not on a fixed poll; `minute` is a
setting so that tests can run the same code on a shorter clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from cove.server.records import SandboxRecord, SandboxState
from cove.server.sandboxes import SandboxService
from cove.wire.errors import CoveError

log = logging.getLogger("cove.server")


class LifecycleSweeper:
    def __init__(
        self, service: SandboxService, minute: float = 60.0, max_sleep: float = 60.0
    ) -> None:
        self.service = service
        self.minute = minute
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.service.on_change.append(self.wake)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    def _due(self, r: SandboxRecord) -> tuple[str, float] | None:
        spec = r.spec
        due: tuple[str, float] | None = None
        if r.state == SandboxState.STARTED and spec.auto_stop_interval > 0:
            active = max(r.last_activity_at, self.service.last_activity(r.id))
            due = "stop", active + spec.auto_stop_interval * self.minute
        elif r.state == SandboxState.STOPPED and spec.auto_delete_interval >= 0:
            due = "delete", r.updated_at + spec.auto_delete_interval * self.minute
        # A TTL deletes in any state, whichever comes first.
        if spec.destroy_at is not None and (due is None or spec.destroy_at <= due[1]):
            due = "delete", spec.destroy_at
        return due

    async def sweep(self) -> float:
        """Apply what is due; return when the next thing falls due."""
        now = time.time()
        next_due = now + self.max_sleep
        for r in self.service.store.list():
            due = self._due(r)
            if due is None:
                continue
            action, when = due
            if when > now:
                next_due = min(next_due, when)
                continue
            try:
                if action == "stop":
                    log.info("auto-stopping idle sandbox %s", r.id)
                    await self.service.stop(r.owner, r.id)
                    next_due = now  # an auto-delete may now be due
                else:
                    log.info("auto-deleting stopped sandbox %s", r.id)
                    await self.service.delete(r.owner, r.id)
            except CoveError as err:
                log.warning("auto-%s of sandbox %s failed: %s", action, r.id, err.message)
        self.service.flush_activity()
        return next_due

    async def _run(self) -> None:
        while True:
            try:
                next_due = await self.sweep()
            except Exception:
                log.exception("lifecycle sweep failed")
                next_due = time.time() + self.max_sleep
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, next_due - time.time()))
