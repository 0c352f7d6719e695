"""Watching host processes from the event loop without blocking it.

A sandbox's agent is not always our child (a control plane that restarted
finds it running, started by its predecessor), so its exit is awaited through
a pidfd and its identity checked by kernel start time, never by pid alone.
`terminate` is the one SIGTERM -> grace -> SIGKILL escalation of the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from typing import Any


def pid_start_time(pid: int) -> str | None:
    """Kernel start time of a live `pid`, to tell it from a reused pid (None: gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return fields[19]


async def wait_pid(pid: int) -> None:
    """Wait for any process (not only a child) to exit, through a pidfd.

    Raises ProcessLookupError if `pid` is already gone.
    """
    fd = os.pidfd_open(pid)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, exited)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def wait_child(popen: subprocess.Popen[Any]) -> int:
    """A child's exit status, waited for on the event loop (pidfd), not in a thread.

    `asyncio.to_thread(popen.wait)` holds one of the default executor's few
    threads (cpu count + 4) for as long as the child lives: a handful of
    sandboxes whose watchers waited that way starved every other `to_thread`
    call of the server (disk set-up, cgroups, deletes), and it hung.
    """
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            await wait_pid(popen.pid)
    return popen.wait()  # it has exited: this only reaps


async def terminate(pid: int, grace: float) -> None:
    """SIGTERM `pid`, wait up to `grace` seconds, then SIGKILL it and wait for the exit."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(wait_pid(pid), grace)
    except (TimeoutError, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await wait_pid(pid)


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of `pids`; those already gone are skipped."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def exit_description(status: int | None) -> str:
    """'the sandbox agent exited with status 137 (SIGKILL)', as far as it is known."""
    reason = "the sandbox agent exited"
    if status is not None:
        reason += f" with status {status}"
        if status > 128:
            with contextlib.suppress(ValueError):  # not a signal number
                reason += f" ({signal.Signals(status - 128).name})"
    return reason


async def read_until(fd: int, end: bytes) -> bytes:
    """Read a pipe up to `end` (or EOF) without blocking the loop; closes `fd`.

    Not to EOF: bwrap's monitor process keeps its copy of the write end open
    for as long as the sandbox runs.

    A reader callback on the bare fd, not a pipe transport: uvloop (the
    server extra) closes a transport's fd twice, once in libuv and once
    through the file object, and between the two another thread (an rmtree
    of a deleted sandbox) could have been given that number: it saw EBADF.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = bytearray()
    done = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data.extend(chunk)
        if (not chunk or end in data) and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)  # before the close: the number may be reused at once
        os.close(fd)
    cut = data.find(end)
    return bytes(data if cut < 0 else data[: cut + len(end)])
