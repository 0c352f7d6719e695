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

import array
import asyncio
import contextlib
import itertools
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cove.agent import scripts
from cove.agent.proc.cgroups import Group
from cove.agent.proc.spawn import Child, Sink, SpawnSpec, read_output

if TYPE_CHECKING:
    from cove.agent.core import Agent, Starter

WORKER = scripts.path("zygote_worker.py")
MAX_REQUEST = 128 * 1024  # zygote_worker.MAX_REQUEST; larger requests are spawned
START_VARS = frozenset({"HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ"})
READY_TIMEOUT = 10.0
FORK_TIMEOUT = 5.0  # a fork takes about a millisecond; then the zygote is deemed stuck
RETRY_AFTER = 5.0  # after a failed start, no new one for this long
LOG_LIMIT = 64 * 1024  # of the zygote's own stderr, copied to the agent's


Forked = tuple[int, "asyncio.Future[int]"]  # a run's pid, and its exit code to come


class ZygoteUnavailable(Exception):
    """The run takes the spawn path."""


def start_signature(env: dict[str, str]) -> frozenset[tuple[str, str]]:
    """The variables an interpreter reads once, while it starts."""
    return frozenset((k, v) for k, v in env.items() if k.startswith("PYTHON") or k in START_VARS)


def _request(run_id: bytes, group: Group, spec: SpawnSpec, script: str, argv: list[str]) -> bytes:
    procs = os.path.join(group.path, "cgroup.procs") if group.path else ""
    fields = [
        run_id,
        os.fsencode(procs),
        os.fsencode(spec.cwd),
        os.fsencode(script),
        b"%d" % len(argv),
        *map(os.fsencode, argv),
        *(os.fsencode(f"{k}={v}") for k, v in spec.env.items()),
    ]
    if any(b"\0" in f for f in fields):
        raise ValueError("embedded null byte")
    return b"\0".join(fields)


def _mtimes(dirs: list[str]) -> list[int | None]:
    out: list[int | None] = []
    for d in dirs:
        try:
            out.append(os.stat(d).st_mtime_ns)
        except OSError:
            out.append(None)
    return out


class ZygoteProcess:
    """One started zygote: its channel, and the runs it is forking."""

    def __init__(self, agent: Agent, child: Child, channel: socket.socket, env: dict[str, str]):
        self.agent = agent
        self.child = child
        self.channel = channel
        self.signature = start_signature(env)
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[list[str]] = loop.create_future()
        self.pending: dict[bytes, asyncio.Future[Forked]] = {}
        self.site_dirs: list[str] = []
        self.site_mtimes: list[int | None] | None = None
        self.closed = False
        self.stopped = False
        self._ids = itertools.count(1)
        loop.add_reader(channel.fileno(), self.read_reports)
        agent.reaper.adopters.append(self.read_reports)
        child.exited.add_done_callback(lambda _: agent.release_group(child.group))

    @property
    def alive(self) -> bool:
        return not (self.closed or self.stopped or self.child.exited.done())

    def stale(self) -> bool:
        """A site directory changed since start: a new interpreter would see another sys.path."""
        return self.site_mtimes is None or _mtimes(self.site_dirs) != self.site_mtimes

    def note_site(self, dirs: list[str], started_ns: int) -> None:
        self.site_dirs = dirs
        mtimes = _mtimes(dirs)
        # Changed while the zygote read them (coarse clocks: a margin): stale at once.
        now = time.time_ns()
        if not any(m is not None and started_ns - 50_000_000 <= m <= now for m in mtimes):
            self.site_mtimes = mtimes

    def read_reports(self) -> None:
        while not self.closed:
            try:
                msg = self.channel.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if not msg:
                self._lost()
                return
            self._dispatch(msg.split(b"\0"))

    def _dispatch(self, fields: list[bytes]) -> None:
        kind = fields[0]
        if kind == b"ready" and not self.ready.done():
            self.ready.set_result([os.fsdecode(d) for d in fields[1:]])
            return
        fut = self.pending.pop(fields[1], None) if len(fields) == 3 else None
        if fut is None or fut.done():
            return  # no such run (pending or cancelled runs stay in `pending` until answered)
        exited = None
        if kind == b"pid" and fields[2].isdigit():
            exited = self.agent.reaper.adopt(int(fields[2]))
        if exited is None:
            fut.set_exception(ZygoteUnavailable(fields[2].decode(errors="replace")))
        else:
            fut.set_result((int(fields[2]), exited))

    def _lost(self) -> None:
        """The channel is closed: the zygote and all its intermediates are gone."""
        self.closed = True
        with contextlib.suppress(ValueError):
            self.agent.reaper.adopters.remove(self.read_reports)
        asyncio.get_running_loop().remove_reader(self.channel.fileno())
        self.channel.close()
        gone = ZygoteUnavailable("the zygote went away")
        futures: list[asyncio.Future[Any]] = [self.ready, *self.pending.values()]
        for fut in futures:
            if not fut.done():
                fut.set_exception(gone)
                fut.exception()  # nobody may be waiting any more
        self.pending.clear()

    def stop(self) -> None:
        """Kill the zygote; runs it already forked go on, their reports still arrive."""
        self.stopped = True
        self.agent.tracker.kill(self.child.group)

    async def fork(
        self, spec: SpawnSpec, script: str, argv: list[str], group: Group, out: Sink, err: Sink
    ) -> Child:
        if not self.alive:
            raise ZygoteUnavailable("the zygote is not running")
        run_id = b"%d" % next(self._ids)
        try:
            request = _request(run_id, group, spec, script, argv)
        except ValueError as exc:  # the spawn path gives the usual error
            raise ZygoteUnavailable(str(exc)) from None
        if len(request) > MAX_REQUEST:
            raise ZygoteUnavailable("request too large for the channel")
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            fds = array.array("i", [out_w, err_w])
            self.channel.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:  # full (a stopped zygote) or gone
            os.close(out_r)
            os.close(err_r)
            raise ZygoteUnavailable(str(exc)) from None
        finally:
            os.close(out_w)
            os.close(err_w)
        pipes = [open(out_r, "rb", buffering=0), open(err_r, "rb", buffering=0)]  # noqa: SIM115
        answer: asyncio.Future[Forked] = asyncio.get_running_loop().create_future()
        self.pending[run_id] = answer
        try:
            pid, exited = await self._answer(answer, group)
            group.pgid = pid
            done, transports = await read_output(pipes[0], pipes[1], out, err)
        except BaseException as exc:
            for pipe in pipes:
                pipe.close()
            if isinstance(exc, ZygoteUnavailable):
                # An intermediate that died after forking left the run in the group.
                self.agent.tracker.kill(group)
            else:  # cancelled: the run may still be on its way into the group
                answer.add_done_callback(lambda f: self._abandon(f, group))
            raise
        return Child(pid, group, exited, done, None, transports)

    async def _answer(self, answer: asyncio.Future[Forked], group: Group) -> Forked:
        try:
            return await asyncio.wait_for(asyncio.shield(answer), FORK_TIMEOUT)
        except TimeoutError:
            pass
        # A stopped or stuck zygote (user code can signal it). Kill it, then the
        # run's group: every intermediate of this run is in one of the two, so
        # no run can be born after this and run twice with the spawned one.
        self.stop()
        self.agent.tracker.kill(group)
        raise ZygoteUnavailable("the zygote did not answer")

    def _abandon(self, answer: asyncio.Future[Forked], group: Group) -> None:
        if not answer.cancelled():
            answer.exception()
        self.agent.tracker.kill(group)
        self.agent.release_group(group)


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
