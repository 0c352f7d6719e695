"""Control-plane wire models: sandboxes (Daytona's Sandbox JSON, wire page §3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cove.wire.model import WireModel

LANGUAGE_LABEL = "code-toolbox-language"


@dataclass
class CreateSandboxRequest(WireModel):
    name: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cpu: int | None = None
    memory: int | None = None  # GiB
    disk: int | None = None  # GiB
    gpu: int | None = None
    user: str | None = None
    snapshot: str | None = None
    target: str | None = None
    public: bool | None = None
    network_block_all: bool | None = None
    network_allow_list: str | None = None  # comma-separated CIDRs
    domain_allow_list: str | None = None  # comma-separated domains, `*.` wildcards
    outbound_proxy_url: str | None = None
    network_deny_list: str | None = None  # Cove: comma-separated CIDRs refused
    auto_stop_interval: int | None = None  # minutes, 0 = never
    auto_delete_interval: int | None = None  # minutes, <0 = never, 0 = on stop
    # Cove: the command a sandbox runs at start, in the reserved session.
    entrypoint: list[str] | None = None
    build_info: dict[str, Any] | None = None
    # The id or name of the owner this sandbox follows (same key; it must be ephemeral).
    linked_sandbox: str | None = None
    # Cove: deleted when it stops (the official SDK sends autoDeleteInterval 0 instead).
    ephemeral: bool | None = None


@dataclass
class Sandbox(WireModel):
    """The Sandbox JSON; every key the official SDK requires is always present."""

    id: str
    name: str
    state: str
    env: dict[str, str]
    labels: dict[str, str]
    cpu: int
    memory: int
    disk: int
    toolbox_proxy_url: str
    created_at: str
    updated_at: str
    organization_id: str = "local"
    user: str = "user"
    public: bool = False
    network_block_all: bool = True
    network_allow_list: str | None = None
    domain_allow_list: str | None = None
    outbound_proxy_url: str | None = None
    network_deny_list: str | None = None
    kvm: bool = False
    target: str = "local"
    gpu: int = 0
    snapshot: str = ""
    error_reason: str | None = None
    recoverable: bool = False
    desired_state: str | None = None
    last_activity_at: str | None = None
    auto_stop_interval: int = 0
    auto_delete_interval: int = -1
    auto_archive_interval: int = 0
    auto_pause_interval: int = 0
    auto_destroy_at: str | None = None  # set while a TTL runs
    linked_sandbox_id: str | None = None  # the owner of a follower
    backup_state: str = "None"
    volumes: list[Any] = field(default_factory=list)
    # The host running it: the Ray node id on the `ray` backend, absent on `local`.
    runner_id: str | None = None


@dataclass
class SandboxList(WireModel):
    items: list[Sandbox]
    next_cursor: str | None = None
    total: int = 0


@dataclass
class UpdateNetworkSettings(WireModel):
    """Body of `POST /api/sandbox/{id}/network-settings` (unset fields keep their value)."""

    network_block_all: bool | None = None
    network_allow_list: str | None = None
    domain_allow_list: str | None = None
    network_deny_list: str | None = None  # Cove


@dataclass
class Node(WireModel):
    """One host that runs sandboxes (`GET /api/nodes`): amounts keyed cpu, memory
    (GiB) and, on the `ray` backend, sandboxes (slots)."""

    id: str
    alive: bool
    capacity: dict[str, float]
    used: dict[str, float]
    free: dict[str, float]
    sandboxes: int


NodeList = list[Node]  # a name for classes whose method `list` hides the builtin


@dataclass
class StorageAccess(WireModel):
    """`GET /object-storage/push-access`: where the official SDK uploads build contexts.

    Daytona's StorageAccessDto; every field is required by the SDK (an empty
    `sessionToken` when the store's key is long-lived)."""

    access_key: str
    secret: str
    session_token: str
    storage_url: str
    organization_id: str
    bucket: str
    region: str
