"""A pre-started clean python per sandbox, forked for each stateless python `code_run`.

Starting `/usr/bin/python3` costs ~10 ms of start-up; forking one that has
started already costs about a millisecond. The zygote (`zygote_worker.py`)
starts once the sandbox's first python code_run has ended, so idle sandboxes
do not pay its memory and no run waits for it; it is started again when it
died or when a site directory it read at start changed (`pip install
--user` adds one to `sys.path`). A run takes the ordinary spawn path
whenever the zygote cannot make it exactly what `python3 -u main.py` would
be: its environment changes how the interpreter starts (PYTHON*, locale,
HOME, TZ), its request does not fit one channel message, or there is no
zygote ready (not started yet, start failed, died or stuck before forking
the run).

Who reaps a run: the agent, as for every command. The zygote forks an
intermediate per run, which joins the run's cgroup, forks the run and exits,
so the run is orphaned to the agent (PID 1 in a sandbox, a subreaper
outside). The intermediate sends the run's pid *before* it exits, and until
it has exited the run is not the agent's child: a run that died at once is
the intermediate's zombie, handed to the agent (with a SIGCHLD) only then.
So when the reaper meets a pid it does not know, that pid's report is
already in the channel; it reads the reports first (`Reaper.adopters`) and
finds the waiter. The run joined its cgroup before it existed (it was born
in it), so timeouts, kill and the memory and pids limits work unchanged.

Known differences from a spawned `python3 -u main.py`, decided:
- forked runs share the zygote's str hash seed. It cannot change after the
  interpreter started (every dict the zygote holds was built with it), and
  it is no secret to keep from the sandbox's own code; a run that sets
  PYTHONHASHSEED is spawned, and each zygote start picks a fresh seed. So a
  set of strings iterates in the same order in every run of one zygote.
- /proc/self/cmdline (what `ps` shows) is the zygote's command line.
- one frame of `zygote_worker` lies below the user's module frame.
- an uncaught KeyboardInterrupt exits with status 130 instead of dying by
  SIGINT; the agent reports both as 130.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cove.agent import scripts
from cove.agent.exec.zygote_process import ZygoteProcess, ZygoteUnavailable, start_signature
from cove.agent.proc.cgroups import Group
from cove.agent.proc.child import Child
from cove.agent.proc.output import Sink
from cove.agent.proc.spawn import SpawnSpec

if TYPE_CHECKING:
    from cove.agent.core import Agent, Starter

log = logging.getLogger("cove.agent")

WORKER = scripts.path("zygote_worker.py")
READY_TIMEOUT = 10.0
RETRY_AFTER = 5.0  # after a failed start, no new one for this long
LOG_LIMIT = 64 * 1024  # of the zygote's own stderr, copied to the agent's


class Zygote:
    """The sandbox's zygote: started after its first python run, replaced when dead or stale.

    No run ever waits for a zygote to start: until one is ready, runs are
    spawned, and the start begins when such a run has ended (so that it does
    not compete with it for the sandbox's CPU).
    """

    def __init__(self, agent: Agent, python_env: Callable[[], dict[str, str]]) -> None:
        self.agent = agent
        self.python_env = python_env  # what every python run's environment starts from
        self._proc: ZygoteProcess | None = None
        self._starting: asyncio.Task[ZygoteProcess] | None = None
        self._retry_at = 0.0
        self._closed = False
        self._logged = 0

    def starter(self, spec: SpawnSpec, script: str, argv: list[str]) -> Starter:
        """Start `python3 -u script *argv` (as `spec` spawns it) from the zygote if it can."""

        async def start(group: Group, out: Sink, err: Sink) -> Child:
            proc = self._serving(spec)
            if proc is not None:
                try:
                    return await proc.fork(spec, script, argv, group, out, err)
                except ZygoteUnavailable:
                    if not proc.alive and self._proc is proc:
                        self._proc = None  # replaced once this run has ended
            child = await self.agent.spawner.spawn(spec, group, out, err)
            if start_signature(spec.env) == start_signature(self.python_env()):
                child.exited.add_done_callback(lambda _: self._start_soon())
            return child

        return start

    def _serving(self, spec: SpawnSpec) -> ZygoteProcess | None:
        """The zygote, if it can make this run exactly what spawning it would."""
        proc = self._proc
        if proc is None:
            return None
        if not proc.alive or proc.stale():
            proc.stop()
            self._proc = None
            return None
        if proc.signature != start_signature(spec.env) or not os.path.isdir(spec.cwd):
            return None
        return proc

    def _start_soon(self) -> None:
        if self._closed or self._proc is not None or self._starting is not None:
            return
        if time.monotonic() < self._retry_at:
            return
        self._starting = asyncio.ensure_future(self._start())
        self._starting.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[ZygoteProcess]) -> None:
        self._starting = None
        if task.cancelled() or task.exception() is not None:
            self._retry_at = time.monotonic() + RETRY_AFTER
            if not task.cancelled() and not self._closed:
                # Runs are spawned meanwhile, only slower: say why, once per attempt.
                log.warning("zygote: start failed", exc_info=task.exception())
        elif self._closed:
            task.result().stop()
        else:
            self._proc = task.result()

    async def _start(self) -> ZygoteProcess:
        env = self.python_env()
        cfg = self.agent.config
        group = self.agent.new_group("zygote")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setblocking(False)
        started_ns = time.time_ns()
        try:
            argv = [cfg.python, "-u", WORKER, str(theirs.fileno())]
            spec = SpawnSpec(argv, cfg.workdir, env, pass_fds=(theirs.fileno(),))
            child = await self.agent.spawner.spawn(spec, group, self._log, self._log)
        except BaseException:
            mine.close()
            self.agent.release_group(group)
            raise
        finally:
            theirs.close()
        proc = ZygoteProcess(self.agent, child, mine, env)
        try:
            dirs = await asyncio.wait_for(asyncio.shield(proc.ready), READY_TIMEOUT)
        except BaseException:
            proc.stop()
            raise
        proc.note_site(dirs, started_ns)
        return proc

    def _log(self, data: bytes) -> None:
        """The zygote writes nothing unless it breaks; keep the first of that."""
        if self._logged < LOG_LIMIT:
            self._logged += len(data)
            sys.stderr.write("zygote: " + data.decode("utf-8", "replace"))

    async def close(self) -> None:
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
