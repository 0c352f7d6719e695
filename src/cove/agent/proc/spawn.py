"""Starting user processes, reaping every child, and reading their output.

The agent is PID 1 of its sandbox (or a child subreaper outside one), so every
orphan in the sandbox ends up as its child. One SIGCHLD handler reaps them all
with `waitpid(-1)` and resolves the exit future of the processes the agent
started itself; that is why nothing in the agent may use asyncio's own
subprocess support, whose watchers would race this handler for exit statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from cove.agent.proc.cgroups import Group, Tracker, join_cgroups

Sink = Callable[[bytes], None]

F_SETPIPE_SZ = 1031
# The pipe of a fast writer is enlarged to this (the unprivileged maximum by
# default), and read this much at a time: its output moves in few large reads.
PIPE_SIZE = 1024 * 1024
DEFAULT_PIPE_SIZE = 64 * 1024
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def harden_self() -> None:
    """Become the reaper of orphans, and untraceable by same-uid user code."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if os.getpid() != 1:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # User code runs under our uid; a non-dumpable agent cannot be
        # ptraced or have its /proc/1/mem written by it.
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except OSError:
        pass


def keep_read_buffers() -> None:
    """Serve pipe-read-sized allocations from heap memory that stays mapped.

    Each read of a command's output allocates up to PIPE_SIZE bytes, and a
    follower may hold a few MiB of them. By default glibc maps such blocks
    fresh, or trims the heap under them, so streaming 1 GiB cost ~80k page
    faults (zeroed pages, cgroup charges) and a fifth of the agent's CPU;
    with these settings ~3k. The price: up to 16 MiB of freed heap kept for
    reuse by an agent that has streamed (an idle one never grew its heap).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt(M_MMAP_THRESHOLD, 2 * PIPE_SIZE)
        libc.mallopt(M_TRIM_THRESHOLD, 16 * PIPE_SIZE)
    except (OSError, AttributeError):
        pass  # not glibc: defaults


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


class _PipeReader(asyncio.Protocol):
    def __init__(self, sink: Sink, done: asyncio.Future[None]) -> None:
        self.sink = sink
        self.done = done
        self.grown = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        # asyncio reads 256 KiB at most per wakeup; a grown pipe holds more.
        transport.max_size = PIPE_SIZE  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if len(data) >= DEFAULT_PIPE_SIZE and not self.grown:
            self._grow()
        self.sink(data)

    def _grow(self) -> None:
        """A full pipe: the writer outpaces us, so let it hand over more per read.

        Only then: enlarged pipes count against the per-user pipe quota
        (pipe-user-pages-soft), and user code past it gets tiny pipes.
        """
        self.grown = True
        pipe = self.transport.get_extra_info("pipe")
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class SpawnSpec:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdin_pipe: bool = False
    # Extra descriptors the child inherits (e.g. a private channel to a worker).
    pass_fds: tuple[int, ...] = ()


@dataclass
class Child:
    pid: int
    group: Group
    exited: asyncio.Future[int]
    output_done: asyncio.Future[tuple[None, None]]
    stdin_fd: int | None = None
    _transports: list[asyncio.ReadTransport] = field(default_factory=list)

    def close_stdin(self) -> None:
        if self.stdin_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.stdin_fd)
            self.stdin_fd = None

    def pause_output(self) -> None:
        """Stop reading stdout and stderr: the child blocks once the pipes are full."""
        for t in self._transports:
            t.pause_reading()

    def resume_output(self) -> None:
        for t in self._transports:
            t.resume_reading()

    def detach_output(self) -> None:
        """Stop reading (background processes may hold the pipes open forever)."""
        for t in self._transports:
            t.close()


class Spawner:
    def __init__(self, tracker: Tracker, reaper: Reaper) -> None:
        self.tracker = tracker
        self.reaper = reaper

    async def spawn(self, spec: SpawnSpec, group: Group, on_stdout: Sink, on_stderr: Sink) -> Child:
        files = self.tracker.enter_files(group)

        def in_child() -> None:  # between fork and exec
            join_cgroups(files)

        proc = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=spec.env,
            stdin=subprocess.PIPE if spec.stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=in_child,
            close_fds=True,
            pass_fds=spec.pass_fds,
        )
        exited = self.reaper.watch(proc.pid)
        # Tell subprocess the child is ours to reap, so its own cleanup never
        # calls waitpid on a pid that may since have been reused.
        exited.add_done_callback(lambda f: setattr(proc, "returncode", f.result()))
        group.pgid = proc.pid
        assert proc.stdout is not None and proc.stderr is not None
        done, transports = await read_output(proc.stdout, proc.stderr, on_stdout, on_stderr)
        stdin_fd = None
        if proc.stdin is not None:
            stdin_fd = os.dup(proc.stdin.fileno())
            proc.stdin.close()
        return Child(proc.pid, group, exited, done, stdin_fd, transports)


@dataclass
class PtyChild:
    """A process on a pseudo-terminal: the agent holds the master side."""

    pid: int
    group: Group
    master_fd: int
    exited: asyncio.Future[int]


def set_winsize(fd: int, cols: int, rows: int) -> None:
    """Resize the terminal; the kernel sends SIGWINCH to its foreground job."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def spawn_pty(spawner: Spawner, spec: SpawnSpec, group: Group, cols: int, rows: int) -> PtyChild:
    """Start `spec` as a session leader whose controlling terminal is a new PTY."""
    master, slave = os.openpty()  # both non-inheritable; Popen dups the slave onto 0-2
    files = spawner.tracker.enter_files(group)

    def in_child() -> None:  # after setsid (start_new_session), before exec
        join_cgroups(files)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        set_winsize(master, cols, rows)
        proc = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=spec.env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=in_child,
            close_fds=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # once the child is gone, reads of the master end with EIO
    exited = spawner.reaper.watch(proc.pid)
    exited.add_done_callback(lambda f: setattr(proc, "returncode", f.result()))
    group.pgid = proc.pid
    os.set_blocking(master, False)
    return PtyChild(proc.pid, group, master, exited)


class CappedOutput:
    """stdout, stderr and their interleaving, each kept up to `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.combined = bytearray()
        self.truncated = False

    def _add(self, buf: bytearray, data: bytes) -> None:
        room = self.cap - len(buf)
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        buf += data

    def on_stdout(self, data: bytes) -> None:
        self._add(self.stdout, data)
        self._add(self.combined, data)

    def on_stderr(self, data: bytes) -> None:
        self._add(self.stderr, data)
        self._add(self.combined, data)


async def read_output(
    stdout: IO[bytes], stderr: IO[bytes], on_stdout: Sink, on_stderr: Sink
) -> tuple[asyncio.Future[tuple[None, None]], list[asyncio.ReadTransport]]:
    """Feed a child's stdout and stderr pipes to their sinks.

    The future is done at EOF of both; closing the transports closes the pipes.
    """
    loop = asyncio.get_running_loop()
    done_out: asyncio.Future[None] = loop.create_future()
    done_err: asyncio.Future[None] = loop.create_future()
    t1, _ = await loop.connect_read_pipe(lambda: _PipeReader(on_stdout, done_out), stdout)
    t2, _ = await loop.connect_read_pipe(lambda: _PipeReader(on_stderr, done_err), stderr)
    return asyncio.gather(done_out, done_err), [t1, t2]
