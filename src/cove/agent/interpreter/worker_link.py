"""The agent's end of one interpreter worker: its channel, its output pipes, flow control.

The channel is a private socketpair carrying newline-delimited JSON (see
`interp_worker`); the worker's stdout and stderr are pipes read by the
spawner. This module knows nothing of runs or contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import struct
import termios
from typing import Any

from cove.agent.proc.cgroups import Group
from cove.agent.proc.spawn import Child

CHANNEL_LIMIT = 256 * 1024 * 1024  # one frame may carry a large PNG or HTML table
F_SETPIPE_SZ = 1031  # Linux
PIPE_SIZE = 1024 * 1024  # the unprivileged maximum by default


def _pending_bytes(fd: int) -> int:
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", buf)[0])


class WorkerProcess:
    def __init__(
        self,
        child: Child,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pipe_fds: list[int],
    ) -> None:
        self.child = child
        self.reader = reader
        self.writer = writer
        self.pipe_fds = pipe_fds
        for fd in pipe_fds:
            # Bigger reads, fewer frames: clients that append each frame to a
            # string (the official SDK does) copy far less on heavy output.
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
        # Cleared while the client is slow: the pipes stop being read, the
        # worker blocks in write(), and the agent's memory stays bounded.
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reading = asyncio.create_task(self._read())

    @property
    def group(self) -> Group:
        return self.child.group

    @property
    def alive(self) -> bool:
        return not self.child.exited.done() and not self.reading.done()

    async def _read(self) -> None:
        """Channel lines become messages; EOF or garbage ends the worker (None)."""
        try:
            while line := await self.reader.readline():
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    break
                self.messages.put_nowait(msg)
        except (ValueError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.messages.put_nowait(None)

    def send(self, msg: dict[str, Any]) -> None:
        self.writer.write((json.dumps(msg) + "\n").encode())

    async def drain_output(self) -> None:
        """Let the pipe readers take what the worker wrote before its last message.

        Control messages and output travel on different descriptors, so a
        message can be seen before output written earlier; everything the
        worker wrote is already in the kernel's pipe buffers by then.
        """
        for _ in range(1000):  # bounded: a background child may write forever
            await self.flowing.wait()
            if not any(_pending_bytes(fd) for fd in self.pipe_fds):
                return
            await asyncio.sleep(0)

    def set_flowing(self, flowing: bool) -> None:
        if flowing == self.flowing.is_set():
            return
        for transport in self.child._transports:
            if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
                if flowing:
                    transport.resume_reading()
                else:
                    transport.pause_reading()
        if flowing:
            self.flowing.set()
        else:
            self.flowing.clear()

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGINT)
