"""Where the agent puts the processes it starts, and how it kills them all.

The runtime backend binds the sandbox's "user" cgroups into the control
directory (see `cove.runtime.local.cgroups`): the `*.procs` files of the memory,
pids and cpu controllers, whose limits user code must live under, and a
tracking directory (v1 freezer or a v2 subtree) in which the agent makes one
child cgroup per command. A command's whole tree, including processes that
double-fork or call setsid, stays in its cgroup, so "kill the command"
means "kill the cgroup": freeze it, SIGKILL every member, thaw.

Without that directory (the agent running outside a sandbox, in tests or a
backend without cgroups) it falls back to process groups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass


@dataclass
class Group:
    """One command's (or session's) processes."""

    name: str
    path: str | None  # its tracking cgroup directory, if cgroups are available
    pgid: int | None = None

    def pids(self) -> list[int]:
        if self.path is None:
            return []
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(line) for line in f if line.strip()]
        except OSError:
            return []


class Tracker:
    def __init__(self, cgroup_dir: str | None) -> None:
        self.limit_files: list[str] = []
        self.track_dir: str | None = None
        self.v2 = False
        if cgroup_dir and os.path.isdir(cgroup_dir):
            for name in ("memory.procs", "pids.procs", "cpu.procs"):
                path = os.path.join(cgroup_dir, name)
                if os.path.exists(path):
                    self.limit_files.append(path)
            track = os.path.join(cgroup_dir, "track")
            if os.path.isdir(track):
                self.track_dir = track
                self.v2 = os.path.exists(os.path.join(track, "cgroup.kill")) or not os.path.exists(
                    os.path.join(track, "freezer.state")
                )

    def new_group(self, name: str) -> Group:
        if self.track_dir is None:
            return Group(name, None)
        path = os.path.join(self.track_dir, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError:
            return Group(name, None)
        return Group(name, path)

    def enter_files(self, group: Group) -> list[str]:
        """Files a freshly forked child writes "0" into to join its cgroups."""
        files = list(self.limit_files)
        if group.path is not None:
            files.append(os.path.join(group.path, "cgroup.procs"))
        return files

    def signal(self, group: Group, sig: int) -> None:
        """Send `sig` to every process of the group."""
        if group.path is None:
            if group.pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group.pgid, sig)
            return
        for pid in group.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def kill(self, group: Group) -> None:
        """SIGKILL the whole group; frozen first so that nothing forks meanwhile."""
        if group.path is None:
            self.signal(group, signal.SIGKILL)
            return
        if self.v2 and os.path.exists(os.path.join(group.path, "cgroup.kill")):
            _write(os.path.join(group.path, "cgroup.kill"), "1")
            return
        state = os.path.join(group.path, "freezer.state")
        # v1 freezes asynchronously (FREEZING): a task not yet frozen can still
        # fork a child the pass below never sees, so wait until it says FROZEN.
        frozen = _write(state, "FROZEN") and _wait_frozen(state)
        _kill_pass(group)  # frozen tasks die as they thaw
        if frozen:
            _write(state, "THAWED")
        # Not frozen (no freezer, or it did not settle): a fork bomb can outrun a
        # single pass, so pass again until the group is empty.
        for _ in range(100):
            if not _kill_pass(group):
                break

    def remove(self, group: Group) -> None:
        if group.path is not None:
            with contextlib.suppress(OSError):
                os.rmdir(group.path)


def _kill_pass(group: Group) -> bool:
    """SIGKILL each member once; whether there were any."""
    pids = group.pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return bool(pids)


def _wait_frozen(state: str, timeout: float = 2.0) -> bool:
    """Whether the freezer settled in FROZEN within `timeout` (polled: no event to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(state) as f:
                if f.read().strip() == "FROZEN":
                    return True
        except OSError:
            return False
        time.sleep(0.001)
    return False


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False


def join_cgroups(files: list[str]) -> None:
    """Run in the forked child before exec (async-signal-safe enough: no locks)."""
    for path in files:
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
