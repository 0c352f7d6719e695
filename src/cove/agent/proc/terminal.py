"""A pseudo-terminal's master side, held by the agent; and the child that runs on one.

The agent reads the master with a loop reader (not a thread) into one sink,
and writes input to it without blocking. The child on the slave side is an
ordinary `Child` (terminate, kill, drain work as for pipes) whose output is
this terminal; `PtyChild` adds what only a terminal has: input and a size.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios

from cove.agent.proc.cgroups import Group, Tracker
from cove.agent.proc.child import Child
from cove.agent.proc.output import Sink, pending_bytes

READ_SIZE = 65536


def set_winsize(fd: int, cols: int, rows: int) -> None:
    """Resize the terminal; the kernel sends SIGWINCH to its foreground job."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """The master side of one PTY, read into `sink` until every slave holder is gone."""

    def __init__(self, master_fd: int, sink: Sink) -> None:
        self.fd = master_fd
        self.sink = sink
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._reading = False
        self._closed = False
        os.set_blocking(master_fd, False)
        self.resume()

    @property
    def done(self) -> asyncio.Future[None]:
        return self._done

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the terminal is gone
            data = b""
        if not data:
            self.pause()
            if not self._done.done():
                self._done.set_result(None)
            return
        self.sink(data)

    def pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def resume(self) -> None:
        if not (self._reading or self._closed or self._done.done()):
            self._loop.add_reader(self.fd, self._readable)
            self._reading = True

    def close(self) -> None:
        if not self._closed:
            self.pause()
            self._closed = True
            os.close(self.fd)

    def pending(self) -> int:
        return 0 if self._closed else pending_bytes(self.fd)

    def resize(self, cols: int, rows: int) -> None:
        if not self._closed:
            set_winsize(self.fd, cols, rows)

    async def write(self, data: bytes) -> None:
        """Write all of `data`, waiting while the terminal's input queue is full."""
        view = memoryview(data)
        while view and not self._closed:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                ready = self._loop.create_future()
                self._loop.add_writer(self.fd, ready.set_result, None)
                try:
                    await ready
                finally:
                    self._loop.remove_writer(self.fd)


class PtyChild(Child):
    """A process on a pseudo-terminal: a session leader whose controlling tty it is."""

    def __init__(
        self,
        pid: int,
        group: Group,
        tracker: Tracker,
        exited: asyncio.Future[int],
        terminal: Terminal,
    ) -> None:
        super().__init__(pid, group, tracker, exited, terminal)
        self.terminal = terminal
