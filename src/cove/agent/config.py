"""The agent's configuration, written by the runtime backend into the control dir.

The runtime builds an `AgentConfig` and writes its `to_wire()` form; the
agent reads it back with `load`. Both sides use this one model, so a key the
agent does not know can only come from a runtime of another version or a
typo: the agent refuses it (a silent default would run the sandbox with a
setting nobody asked for). The output and log caps are declared here once;
the runtime's spec and the server's settings import them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from cove.wire.errors import BadRequest
from cove.wire.model import WireModel, camel

# Bytes of output one exec/code-run keeps (stdout and stderr each).
DEFAULT_OUTPUT_CAP = 10 * 1024 * 1024
# Bytes of log one session command keeps on disk, per stream.
DEFAULT_LOG_CAP = 64 * 1024 * 1024


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
    max_log_bytes: int = DEFAULT_LOG_CAP
    cgroup_dir: str | None = None
    control_dir: str = "/run/cove"
    runtime_dir: str = "/opt/cove/runtime"
    python: str = "/usr/bin/python3"
    node: str = "/usr/bin/node"
    entrypoint: list[str] | None = None
    # Default cwd of sessions and the entrypoint (an image's WORKDIR); relative
    # paths are under `workdir`, a missing directory is created.
    session_cwd: str | None = None
    # A shell nothing in the sandbox can change (the host's, read-only), which a
    # shell command's process runs first to join its cgroups; "" (an image's own
    # root, whose /bin/sh its code may replace): the agent joins them itself.
    join_shell: str = ""

    @classmethod
    def parse(cls, data: Any) -> AgentConfig:
        """The config in `data` (its wire form); BadRequest naming any key it does not know."""
        if isinstance(data, dict):
            known = {camel(f.name) for f in dataclasses.fields(cls)}
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise BadRequest(
                    f"agent config: unknown key{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(repr(k) for k in unknown)}"
                )
        return cls.from_wire(data, "agent config")

    @classmethod
    def load(cls, path: str) -> AgentConfig:
        """The config file at `path`, for the agent's start.

        A bad config ends the agent at once with a one-line reason on stderr
        (its log, which the runtime quotes when a start fails), as a bad
        command line does: there is nothing to serve without it.
        """
        with open(path) as f:
            data = json.load(f)
        try:
            return cls.parse(data)
        except BadRequest as err:
            raise SystemExit(f"cove agent: refusing to start: {err.message}") from None
