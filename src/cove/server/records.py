"""What the control plane knows about a sandbox: its state and its record.

`SandboxState` values are Daytona's state strings, sent as they are on the
wire. `RecordSpec` is what was asked for at create (after defaults and spec
hooks such as image definitions), stored as JSON in its wire form: the keys
of records written before this model existed are the same.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from cove.wire.model import WireModel
from cove.wire.protocol.network import NetworkPolicy


class SandboxState(enum.StrEnum):
    CREATING = "creating"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"
    PENDING_BUILD = "pending_build"
    BUILDING_SNAPSHOT = "building_snapshot"
    BUILD_FAILED = "build_failed"
    DESTROYED = "destroyed"  # only in the answer to a delete; never stored


@dataclass
class RecordSpec(WireModel):
    """A sandbox's requested shape; sizes in Daytona's units (GiB), intervals in minutes."""

    env: dict[str, str]
    labels: dict[str, str]
    cpu: int
    memory: int
    disk: int
    language: str
    entrypoint: list[str] | None = None
    auto_stop_interval: int = 0  # 0 = never
    auto_delete_interval: int = -1  # <0 = never, 0 = as soon as it stops
    auto_archive_interval: int = 0  # stored and reported; archiving is not done yet
    auto_pause_interval: int = 0  # stored and reported; pausing is not done yet
    destroy_at: float | None = None  # a TTL's deadline (epoch seconds), in any state
    public: bool = False
    workdir: str | None = None  # an image's WORKDIR
    image: str | None = None  # the image reference asked for (a FROM, a snapshot name)
    image_id: str | None = None  # the image in the store it runs on; None: the default root
    dockerfile: str | None = None  # an image to build first (the SDK's `buildInfo`)
    # Its build context: the official SDK's uploads to the object store (by md5).
    context_hashes: list[str] = field(default_factory=list)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    linked_sandbox_id: str | None = None  # a follower's owner (same key)


@dataclass
class SandboxRecord:
    id: str
    owner: str  # the hash of the API key that created it
    name: str
    state: SandboxState
    spec: RecordSpec
    backend: str
    runtime: dict[str, Any] = field(default_factory=dict)  # the backend's handle state
    error_reason: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_activity_at: float = field(default_factory=time.time)


@dataclass
class SshGrant:
    """One SSH access token, as stored: the token itself is never kept, only its hash."""

    token_hash: str
    id: str
    sandbox_id: str
    created_at: float
    expires_at: float
