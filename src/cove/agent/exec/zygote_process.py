"""One running zygote, agent side: its channel, and the runs it forks for the agent.

The protocol on the channel (a SOCK_SEQPACKET socketpair; `zygote_worker.py`
is the other end): the agent sends one request per run (fields NUL-separated:
run id, the run's cgroup.procs, cwd, script, argv, env) with the run's stdout
and stderr pipes attached (SCM_RIGHTS); the zygote answers `pid <id> <pid>`
once the run exists, or `err <id> <why>`, and `ready <site dirs...>` once at
start. Why the agent reads those answers from its reaper: see `zygote`.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from cove.agent.proc.cgroups import Group
from cove.agent.proc.child import Child
from cove.agent.proc.output import PipeOutput, Sink
from cove.agent.proc.spawn import SpawnSpec

if TYPE_CHECKING:
    from cove.agent.core import Agent

MAX_REQUEST = 128 * 1024  # zygote_worker.MAX_REQUEST; larger requests are spawned
START_VARS = frozenset({"HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ"})
FORK_TIMEOUT = 5.0  # a fork takes about a millisecond; then the zygote is deemed stuck

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
        self.child.kill()

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
            output = await PipeOutput.open(pipes[0], pipes[1], out, err)
        except BaseException as exc:
            for pipe in pipes:
                pipe.close()
            if isinstance(exc, ZygoteUnavailable):
                # An intermediate that died after forking left the run in the group.
                self.agent.tracker.kill(group)
            else:  # cancelled: the run may still be on its way into the group
                answer.add_done_callback(lambda f: self._abandon(f, group))
            raise
        return Child(pid, group, self.agent.tracker, exited, output)

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
