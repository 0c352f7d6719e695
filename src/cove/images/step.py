"""A build step as the builder asks a runtime to run it (RUN, COPY, ADD).

The runtime runs it in a build sandbox over the image so far and hands back
what it changed (an overlayfs upper directory) as the new layer's tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from cove.runtime.base import RuntimeHandle

Log = Callable[[str], None]


@dataclass
class Step:
    lower: list[str]  # the image so far: layer directories, top first
    argv: list[str]
    env: dict[str, str]
    cwd: str = "/"
    ro_binds: dict[str, str] = field(default_factory=dict)  # inside path -> host directory
    # inside path -> another image's layers (top first), mounted read-only there
    ro_images: dict[str, list[str]] = field(default_factory=dict)
    cpus: float = 2.0
    memory_bytes: int = 4 << 30
    pids: int = 4096
    timeout: float = 3600.0
    # Bytes the step may write (its layer, and its home and control directories);
    # None: as much as the host has. Past it, writes inside fail with ENOSPC.
    disk_bytes: int | None = None
    # RUN steps reach the network (apt-get, pip) as any sandbox with the default
    # policy would; COPY steps never need it.
    network: bool = False


MIN_DISK_BYTES = 64 << 20  # below this an ext4 holds too little to be a useful bound


def disk_bound(gib: float) -> int:
    """A step's disk bound in bytes (whole MiB) from COVE_BUILD_DISK_GIB; ValueError if small."""
    size = int(gib * 1024) << 20
    if size < MIN_DISK_BYTES:
        raise ValueError(f"COVE_BUILD_DISK_GIB must be at least 0.0625 (64 MiB), got {gib:g}")
    return size


@runtime_checkable
class StepRunner(Protocol):
    async def run_build_step(self, step: Step, out: Log, dest: Path) -> None:
        """Run `step`, streaming its output lines to `out`; its changes end up at `dest`.

        SandboxError naming the exit status if it fails.
        """


@runtime_checkable
class Capturer(Protocol):
    async def capture_changes(self, handle: RuntimeHandle, dest: Path) -> None:
        """A sandbox's own changes (its root's writable layer and its workspace at
        /home/user) as one layer tree at `dest` (made here; its parent exists)."""
