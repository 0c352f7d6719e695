"""The agent's end of one interpreter worker: its channel, its output pipes, flow control.

The channel is a private socketpair carrying newline-delimited JSON (see
`interp_worker`); the worker's stdout and stderr are its `Child`'s output,
paused while the run's client is slow. This module knows nothing of runs or
contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from cove.agent.proc.cgroups import Group
from cove.agent.proc.child import Child

CHANNEL_LIMIT = 256 * 1024 * 1024  # one frame may carry a large PNG or HTML table


class WorkerProcess:
    def __init__(
        self,
        child: Child,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.child = child
        self.reader = reader
        self.writer = writer
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
            await self.child.output_resumed()
            if not self.child.output.pending():
                return
            await asyncio.sleep(0)

    def set_flowing(self, flowing: bool) -> None:
        """Read the worker's output (True) or not (False: its client is slow; the
        worker blocks in write() and the agent's memory stays bounded)."""
        if flowing == (not self.child.output_paused):
            return
        if flowing:
            self.child.resume_output()
        else:
            self.child.pause_output()

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGINT)
