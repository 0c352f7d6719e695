"""A running local sandbox's resources: readings for metrics, limits changed in place.

Blocking (cgroup files, a walk of the workspace): the backend runs these in
a thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.runtime.base import ResourceUsage
from cove.runtime.local.cgroups import SandboxCgroups
from cove.wire.errors import Conflict

MiB = 1024 * 1024


def disk_used(top: Path) -> int:
    """Bytes allocated under `top` (st_blocks, as `du`), symlinks not followed.

    A hard link met twice is counted once. Entries that vanish mid-walk (the
    sandbox keeps running) are skipped.
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(top)]
    while stack:
        path = stack.pop()
        try:
            entries = os.scandir(path)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def read_usage(cg: SandboxCgroups, workspace: Path) -> ResourceUsage:
    u = cg.usage()
    return ResourceUsage(
        cpus=cg.cpu_quota(),
        cpu_seconds=u.cpu_seconds,
        memory_limit=cg.memory_limit(),
        memory_bytes=u.memory_bytes,
        user_memory_bytes=u.user_memory_bytes,
        cache_bytes=u.cache_bytes,
        disk_used=disk_used(workspace),
    )


def resize(cg: SandboxCgroups, cpus: float, memory_bytes: int) -> None:
    """New limits in place; a memory size under current use is refused with that use."""
    used = cg.usage().user_working_set
    if memory_bytes < used:
        raise Conflict(
            f"the sandbox uses {used / MiB:.0f} MiB of memory now, more than the "
            f"{memory_bytes / MiB:.0f} MiB asked for; free memory in it first",
            body={"memoryUsedBytes": used},
        )
    try:
        cg.set_limits(cpus, memory_bytes)
    except OSError as exc:
        # EBUSY: the kernel could not reclaim down to the new limit (use grew
        # between the check and the write).
        used = cg.usage().user_working_set
        raise Conflict(
            f"the memory limit could not be lowered to {memory_bytes / MiB:.0f} MiB: "
            f"the sandbox uses {used / MiB:.0f} MiB ({exc.strerror})",
            body={"memoryUsedBytes": used},
        ) from None


def memory_available() -> int:
    """The host's MemAvailable, in bytes."""
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0
