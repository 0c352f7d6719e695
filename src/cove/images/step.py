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
    # RUN steps reach the network (apt-get, pip) as any sandbox with the default
    # policy would; COPY steps never need it.
    network: bool = False


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
