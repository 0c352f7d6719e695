"""The agent's configuration, written by the runtime backend into the control dir."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cove.wire.model import WireModel

DEFAULT_OUTPUT_CAP = 10 * 1024 * 1024


@dataclass
class AgentConfig(WireModel):
    sandbox_id: str
    socket: str
    workdir: str = "/home/user"
    user: str = "user"
    env: dict[str, str] = field(default_factory=dict)
    language: str = "python"
    max_output_bytes: int = DEFAULT_OUTPUT_CAP
    # Per-command log cap for sessions (bytes per stream).
    max_log_bytes: int = 64 * 1024 * 1024
    cgroup_dir: str | None = None
    control_dir: str = "/run/cove"
    runtime_dir: str = "/opt/cove/runtime"
    python: str = "/usr/bin/python3"
    node: str = "/usr/bin/node"
    entrypoint: list[str] | None = None
    # Default cwd of sessions and the entrypoint (an image's WORKDIR); relative
    # paths are under `workdir`, a missing directory is created.
    session_cwd: str | None = None

    @classmethod
    def load(cls, path: str) -> AgentConfig:
        with open(path) as f:
            return cls.from_wire(json.load(f), "agent config")
