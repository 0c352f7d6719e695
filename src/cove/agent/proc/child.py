"""The child object: one process the agent started, with its cgroup, output and stdin.

Modelled on trio's `Process`: what every feature does to a process it started
is a method here, written once. A child's "tree" is its cgroup (`cgroups`):
everything it started, setsid'd and double-forked processes included, so
signals and kills go to the cgroup, not to a pid or a process group.

- `terminate(grace)`: SIGTERM (and SIGCONT, so a stopped process sees it) to
  the tree; wait, at most `grace`, until every process that may act on it is
  gone (the main one by its exit future, the others by pidfds); then SIGKILL
  the whole cgroup. A process that ignores SIGTERM (an interactive shell does)
  is not waited for (the signal was discarded when it was sent), nor is a
  zombie whose parent does not reap it.
- `kill()`: SIGKILL the whole cgroup now.
- `pause_output()` / `resume_output()`: stop and restart reading its output
  (a slow consumer: the child blocks in write(), the agent's memory stays flat).
- `drain()`: after the exit, read what is left for `DRAIN_AFTER_EXIT`, then
  stop reading (background processes may hold the output open forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from cove.agent.proc.cgroups import Group, Tracker
from cove.agent.proc.output import Output

# How long SIGTERM has to work before SIGKILL, when a session, a PTY or the agent ends.
KILL_GRACE = 2.0
# After the main process exits, how long to keep reading output that its
# background children may still be writing into the inherited pipes.
DRAIN_AFTER_EXIT = 0.2


class Child:
    """A started process: `exited` resolves to its exit code (128+N for signal N)."""

    def __init__(
        self,
        pid: int,
        group: Group,
        tracker: Tracker,
        exited: asyncio.Future[int],
        output: Output,
        stdin: asyncio.WriteTransport | None = None,
    ) -> None:
        self.pid = pid
        self.group = group
        self.exited = exited
        self.output = output
        # Write transport of its stdin pipe (None: it reads /dev/null or a terminal).
        self.stdin = stdin
        self._tracker = tracker
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def output_done(self) -> asyncio.Future[object]:
        return self.output.done

    async def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code, or None if it is still running after `timeout` seconds."""
        await asyncio.wait({self.exited}, timeout=timeout)
        return self.exited.result() if self.exited.done() else None

    # -- signals ---------------------------------------------------------------
    def signal(self, sig: int) -> None:
        """Send `sig` to every process of its tree."""
        self._signal_unjoined(sig)
        self._tracker.signal(self.group, sig)

    def kill(self) -> None:
        """SIGKILL its whole tree now."""
        self._signal_unjoined(signal.SIGKILL)
        self._tracker.kill(self.group)

    def _signal_unjoined(self, sig: int) -> None:
        """`sig` to its first process, while that is not yet in its cgroup.

        A shell command starts as the joining shell (`spawn`), which writes
        itself into the cgroup a moment after the start has returned: sent to
        the cgroup before then, a signal finds it empty (an exec with a timeout
        of almost nothing ran its whole command). Until it has joined, that
        shell is the command's only process, and it has not exec'd, so nothing
        of the command can have set a handler that a second delivery (it joins
        between this and the cgroup's signal) would run twice. Its pid names no
        other process while it is not reaped (`exited` not done).
        """
        if self.group.path is None or self.exited.done():
            return
        if self.pid not in self.group.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)

    async def terminate(self, grace: float = KILL_GRACE) -> None:
        """SIGTERM its tree, wait up to `grace` for it to end, then SIGKILL what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)  # a stopped process must see it
        if may_act_on(self.pid, signal.SIGTERM):
            await asyncio.wait({self.exited}, timeout=grace)
        # What it left in the background has no exit future of ours: pidfds.
        while (pids := self._may_end()) and (left := deadline - loop.time()) > 0:
            if not await exits(pids, left):
                break
        self.kill()

    def _may_end(self) -> list[int]:
        """Processes of its tree still running that a SIGTERM could end."""
        return [p for p in self.group.pids() if may_act_on(p, signal.SIGTERM)]

    # -- output and input --------------------------------------------------------
    def pause_output(self) -> None:
        """Stop reading its output: it blocks once the pipes (or terminal) are full."""
        self._flowing.clear()
        self.output.pause()

    def resume_output(self) -> None:
        self._flowing.set()
        self.output.resume()

    @property
    def output_paused(self) -> bool:
        return not self._flowing.is_set()

    async def output_resumed(self) -> None:
        await self._flowing.wait()

    async def drain(self, window: float = DRAIN_AFTER_EXIT) -> None:
        """After the exit: take what is left of the output, then stop reading.

        Background processes may keep the output open forever, so this stops
        after `window`; but not while the reader holds output back (paused):
        the output is there, only not read yet.
        """
        while True:
            await asyncio.wait({self.output.done}, timeout=window)
            if self.output.done.done() or not self.output_paused:
                break
            await self.output_resumed()
        self.close_output()

    def close_output(self) -> None:
        """Stop reading its output now and close the agent's end."""
        self.output.close()

    def close_stdin(self) -> None:
        """EOF on its stdin, after what is still buffered for it is written."""
        if self.stdin is not None:
            self.stdin.close()
            self.stdin = None


def may_act_on(pid: int, sig: int) -> bool:
    """False when `pid` cannot end because of `sig`: it ignores it, or it is a zombie.

    True when that cannot be read (gone, or no /proc): the caller's pidfd tells.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f if b":" in line)
        zombie = fields[b"State"].split()[0] in (b"Z", b"X")
        ignored = int(fields[b"SigIgn"].strip(), 16) >> (sig - 1) & 1
    except (OSError, KeyError, ValueError, IndexError):
        return True
    return not (zombie or ignored)


async def exits(pids: list[int], timeout: float) -> bool:
    """Wait until these processes have exited (pidfds work for non-children too).

    False when that cannot be watched (no pidfd support): the caller stops waiting.
    """
    loop = asyncio.get_running_loop()
    watched: list[tuple[int, asyncio.Future[None]]] = []
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # already gone
            except OSError:
                return False
            gone: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, gone)
            watched.append((fd, gone))
        if watched:
            await asyncio.wait([f for _, f in watched], timeout=max(timeout, 0))
        return True
    finally:
        for fd, _ in watched:
            loop.remove_reader(fd)
            os.close(fd)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
