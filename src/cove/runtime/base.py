"""The runtime backend contract: where a sandbox's agent runs.

Popen-shaped and small, so that a second backend (runc/gVisor, Kubernetes)
is one new module passing the same contract tests (tests/contract). The
control plane only ever talks to this interface and to the agent's endpoint.
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cove.agent.config import DEFAULT_LOG_CAP, DEFAULT_OUTPUT_CAP
from cove.runtime.endpoint import AgentEndpoint
from cove.wire.errors import Conflict
from cove.wire.protocol.network import NetworkPolicy


def instance_of(data_dir: Path) -> str:
    """A control plane's (or a node's local backend's) instance id, named from its data
    dir: a restart finds its own sandboxes, and several on one host or cluster stay apart."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]


@dataclass
class SandboxSpec:
    """What the control plane asks a backend to run."""

    id: str
    cpus: float = 1.0
    memory_bytes: int = 1 << 30
    pids: int = 512
    # Bytes the sandbox may write to the host disk (0: no disk of its own, unbounded).
    disk_bytes: int = 0
    env: dict[str, str] = field(default_factory=dict)
    language: str = "python"
    workdir: str | None = None
    entrypoint: list[str] | None = None
    max_output_bytes: int = DEFAULT_OUTPUT_CAP
    max_log_bytes: int = DEFAULT_LOG_CAP
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    # An image id in the backend's image store; None: the default root (the host's /usr).
    image: str | None = None
    name: str = ""  # the sandbox's name, by which its link peers resolve it
    # Sandboxes with the same link group (an owner's id) reach each other.
    link_group: str | None = None


@dataclass
class RuntimeHandle:
    """A backend's record of one sandbox; persisted by the store as JSON."""

    sandbox_id: str
    backend: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResourceUsage:
    """One reading of a running sandbox's use (what metrics are made of)."""

    cpus: float  # CPUs it may use now
    cpu_seconds: float  # CPU time used since it started
    memory_limit: int  # bytes user code may use
    memory_bytes: int  # bytes used by the whole sandbox, page cache included
    user_memory_bytes: int  # bytes used by user code (what its limit applies to)
    cache_bytes: int  # page cache within memory_bytes
    disk_used: int  # bytes in the workspace


@dataclass
class NodeUsage:
    """One host that runs sandboxes: what it offers and what Cove holds of it.

    `capacity` and `used` have the keys cpu (cores), memory (GiB) and
    sandboxes (slots; for `local`, the sandboxes it holds).
    """

    id: str
    alive: bool
    capacity: dict[str, float]
    used: dict[str, float]
    sandboxes: int


@dataclass
class HostRoom:
    """What the host that runs sandboxes has left (admission control reads it)."""

    memory_available: int  # bytes (MemAvailable)
    disk_free: int  # bytes free where sandbox disks live


class RuntimeBackend(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    async def create(self, spec: SandboxSpec) -> RuntimeHandle:
        """Allocate what the sandbox keeps across stop/start (workspace, uid). Not running yet."""

    @abc.abstractmethod
    async def start(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        """Run the agent; return once it answers. Raises SandboxError with the reason."""

    @abc.abstractmethod
    async def stop(self, handle: RuntimeHandle, grace: float = 5.0) -> None:
        """End the agent and every process in the sandbox; the workspace stays."""

    @abc.abstractmethod
    async def destroy(self, handle: RuntimeHandle) -> None:
        """Stop if running, then remove everything the sandbox had."""

    @abc.abstractmethod
    def is_running(self, handle: RuntimeHandle) -> bool:
        """Whether the sandbox's agent process is alive (cheap, no I/O to the agent)."""

    @abc.abstractmethod
    def agent_endpoint(self, handle: RuntimeHandle) -> AgentEndpoint:
        """Where the control plane connects to the agent's toolbox API (no I/O here)."""

    @abc.abstractmethod
    async def wait_exit(self, handle: RuntimeHandle) -> str:
        """Resolve when the running agent exits, with a reason a person can act on."""

    @abc.abstractmethod
    async def cleanup_leftovers(self, known_ids: set[str]) -> list[str]:
        """Remove runtime remains of sandboxes the store does not know; return their ids."""

    async def resize(self, handle: RuntimeHandle, cpus: float, memory_bytes: int) -> None:
        """Change a running sandbox's CPU and memory in place. Optional.

        Raises Conflict when memory_bytes is below what the sandbox uses now.
        """
        raise Conflict(f"the {self.name} backend cannot resize a running sandbox; stop it first")

    def host_room(self) -> HostRoom | None:
        """The one host's room left; None when sandboxes are placed elsewhere. Optional."""
        return None

    def warm_pool_ready(self) -> int | None:
        """Pre-started sandboxes waiting for a create; None without a pool here. Optional."""
        return None

    async def usage(self, handle: RuntimeHandle) -> ResourceUsage | None:
        """A reading of a running sandbox's use; None when the backend cannot tell. Optional."""
        return None

    @property
    def network_note(self) -> str | None:
        """None if sandboxes get egress under their policy, else why they have loopback only."""
        return "this backend gives sandboxes loopback only"

    async def set_network(
        self, handle: RuntimeHandle, old: NetworkPolicy, new: NetworkPolicy
    ) -> None:
        """Put `new` in force for a running sandbox (a stopped one gets it at start)."""
        return None

    async def down_reason(self, handle: RuntimeHandle) -> str | None:
        """Why a sandbox found not running at startup is down, if the backend knows
        (e.g. its node died while the control plane was down); None: no more than that."""
        return None

    async def probe(self, handle: RuntimeHandle) -> None:
        """The agent did not answer: find out whether what holds the sandbox is gone
        (e.g. its node), so that `is_running` and `down_reason` say so. Optional."""
        return None

    async def reattach(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        """A sandbox found running after a control-plane restart: resume serving it."""
        return None

    async def nodes(self) -> list[NodeUsage] | None:
        """The hosts this backend places sandboxes on; None: only this one (the
        control plane counts it from its records)."""
        return None

    def serve(self) -> None:
        """The control plane is up: start background work (e.g. a warm pool). Optional."""
        return None

    async def close(self) -> None:
        """The control plane stops: release what no sandbox record owns. Optional.

        Sandboxes themselves keep running for the next control plane.
        """
        return None
