"""A child's stdout and stderr pipes, read into sinks; and output kept up to a cap.

Output is read by asyncio pipe transports, not by threads or blocking reads:
`PipeOutput` holds the two of them, so a reader can pause them (the child then
blocks in write() once a pipe is full: backpressure), resume them, ask how many
bytes wait in the pipes, and close them. The pipe sizes live here, once.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from collections.abc import Callable
from typing import IO, Any, Protocol

Sink = Callable[[bytes], None]

F_SETPIPE_SZ = 1031  # Linux
# The pipe of a fast writer is enlarged to this (the unprivileged maximum by
# default), and read this much at a time: its output moves in few large reads.
PIPE_SIZE = 1024 * 1024
DEFAULT_PIPE_SIZE = 64 * 1024


class Output(Protocol):
    """What a child's output is to the child object: pipes (`PipeOutput`) or a PTY."""

    @property
    def done(self) -> asyncio.Future[Any]:
        """Resolved at EOF: every writer (the child and what it started) is gone."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...
    def pending(self) -> int:
        """Bytes written by the child that are still in the kernel, not yet read."""


def grow_pipe(fd: int) -> bool:
    """Enlarge a pipe to PIPE_SIZE; False when the kernel refused (pipe quota)."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        return False
    return True


def pending_bytes(fd: int) -> int:
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", buf)[0])


class _PipeReader(asyncio.Protocol):
    def __init__(self, sink: Sink, done: asyncio.Future[None], grown: bool) -> None:
        self.sink = sink
        self.done = done
        self.grown = grown

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
        grow_pipe(self.transport.get_extra_info("pipe").fileno())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class PipeOutput:
    """stdout and stderr of one child, each pipe read into its sink until EOF."""

    def __init__(
        self, done: asyncio.Future[Any], transports: list[asyncio.ReadTransport], fds: list[int]
    ) -> None:
        self._done = done
        self._transports = transports
        # Taken before reading starts: a transport closes its pipe at EOF.
        self._fds = fds

    @classmethod
    async def open(
        cls, stdout: IO[bytes], stderr: IO[bytes], on_stdout: Sink, on_stderr: Sink,
        *, large: bool = False,
    ) -> PipeOutput:  # fmt: skip
        """Start reading; `large`: enlarge both pipes now (a writer known to be heavy)."""
        fds = [stdout.fileno(), stderr.fileno()]
        grown = large and all([grow_pipe(fd) for fd in fds])
        loop = asyncio.get_running_loop()
        done_out: asyncio.Future[None] = loop.create_future()
        done_err: asyncio.Future[None] = loop.create_future()
        out_reader = _PipeReader(on_stdout, done_out, grown)
        err_reader = _PipeReader(on_stderr, done_err, grown)
        t1, _ = await loop.connect_read_pipe(lambda: out_reader, stdout)
        t2, _ = await loop.connect_read_pipe(lambda: err_reader, stderr)
        return cls(asyncio.gather(done_out, done_err), [t1, t2], fds)

    @property
    def done(self) -> asyncio.Future[Any]:
        return self._done

    def pause(self) -> None:
        for t in self._transports:
            if not t.is_closing():
                t.pause_reading()

    def resume(self) -> None:
        for t in self._transports:
            if not t.is_closing():
                t.resume_reading()

    def close(self) -> None:
        """Stop reading and close the pipes (background processes may hold them open)."""
        for t in self._transports:
            t.close()

    def pending(self) -> int:
        # A closing transport's pipe is closed, and its number may be another file's now.
        return sum(
            pending_bytes(fd)
            for fd, t in zip(self._fds, self._transports, strict=True)
            if not t.is_closing()
        )


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
