"""Reaping every child of the agent, and the exit future of each process it watches.

The agent is PID 1 of its sandbox (or a child subreaper outside one), so every
orphan in the sandbox ends up as its child. One SIGCHLD handler reaps them all
with `waitpid(-1)` and resolves the exit future of the processes the agent
started itself; that is why nothing in the agent may use asyncio's own
subprocess support, whose watchers would race this handler for exit statuses.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable


def exit_code(status: int) -> int:
    """Shell convention: a signal N death is 128+N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Reaper:
    def __init__(self) -> None:
        self._waiters: dict[int, asyncio.Future[int]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGCHLD, self.reap)
        # Called before an unknown child is given up: they read the reports of
        # processes handed over to the agent (a zygote's runs), which are sent
        # before those become its children, and `adopt` them.
        self.adopters: list[Callable[[], None]] = []

    def watch(self, pid: int) -> asyncio.Future[int]:
        # Called right after fork, before the loop can run reap(), so no exit
        # status can be consumed before its waiter exists.
        fut = self._loop.create_future()
        self._waiters[pid] = fut
        return fut

    def adopt(self, pid: int) -> asyncio.Future[int] | None:
        """Watch a process another one started and is handing over (None: already watched)."""
        if pid in self._waiters:
            return None
        return self.watch(pid)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fut = self._waiters.pop(pid, None)
            if fut is None:
                for read_reports in list(self.adopters):
                    read_reports()
                fut = self._waiters.pop(pid, None)
            if fut is not None and not fut.done():
                fut.set_result(exit_code(status))
