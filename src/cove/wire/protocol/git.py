"""Toolbox wire models: git, ports and the agent's environment (the official
SDK's `sandbox.git`, the port API and `sandbox.update_env`).

Daytona names the fields of git requests in snake_case on the wire (only the
status answer is camelCase), so those fields say their wire name. Paths are
relative to the sandbox's working directory unless absolute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cove.wire.model import WireModel


def _snake(name: str, default: Any = None) -> Any:
    return field(default=default, metadata={"wire": name})


@dataclass
class GitCloneRequest(WireModel):
    url: str
    path: str
    branch: str | None = None
    commit_id: str | None = _snake("commit_id")
    # Used for this one git process only (a credential helper fed from its
    # environment); never written to the repository's config.
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure_skip_tls: bool | None = _snake("insecure_skip_tls")
    depth: int | None = None


@dataclass
class GitAddRequest(WireModel):
    path: str
    files: list[str]


@dataclass
class GitCommitRequest(WireModel):
    path: str
    message: str
    author: str
    email: str
    allow_empty: bool | None = _snake("allow_empty")


@dataclass
class GitCommitResponse(WireModel):
    hash: str


@dataclass
class GitBranchRequest(WireModel):
    """Create (POST) or delete (DELETE) the branch `name`."""

    path: str
    name: str


@dataclass
class GitCheckoutRequest(WireModel):
    path: str
    branch: str


@dataclass
class GitPullRequest(WireModel):
    path: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    branch: str | None = None
    remote: str | None = None


@dataclass
class GitPushRequest(WireModel):
    path: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    branch: str | None = None
    remote: str | None = None
    set_upstream: bool | None = _snake("set_upstream")


@dataclass
class GitInitRequest(WireModel):
    path: str
    bare: bool | None = None
    initial_branch: str | None = _snake("initial_branch")


@dataclass
class GitResetRequest(WireModel):
    path: str
    mode: str | None = None  # soft, mixed (git's default), hard, merge, keep
    target: str | None = None  # a revision; HEAD when absent
    files: list[str] | None = None


@dataclass
class GitRestoreRequest(WireModel):
    path: str
    files: list[str]
    staged: bool | None = None
    worktree: bool | None = None
    source: str | None = None


@dataclass
class GitAddRemoteRequest(WireModel):
    path: str
    name: str
    url: str
    fetch: bool | None = None
    overwrite: bool | None = None


@dataclass
class GitSetConfigRequest(WireModel):
    key: str
    value: str
    scope: str | None = None  # global (default), local (needs path), system
    path: str | None = None


@dataclass
class GitConfigureUserRequest(WireModel):
    name: str
    email: str
    scope: str | None = None
    path: str | None = None


@dataclass
class GitAuthenticateRequest(WireModel):
    """Stored in plain text in the user's git credential store (the SDK's
    `dangerously_authenticate`)."""

    username: str
    password: str = field(repr=False)
    host: str | None = None  # github.com
    protocol: str | None = None  # https


@dataclass
class GitConfigResponse(WireModel):
    value: str | None = None  # null when the key is not set


@dataclass
class FileStatus(WireModel):
    """One path of `git status`: its index (`staging`) and worktree states, by
    Daytona's names ("Modified", "Untracked"...); `extra` holds a rename's source."""

    name: str
    staging: str
    worktree: str
    extra: str = ""


@dataclass
class GitStatus(WireModel):
    current_branch: str
    file_status: list[FileStatus]
    ahead: int = 0
    behind: int = 0
    branch_published: bool = False
    detached: bool = False
    upstream: str = ""


@dataclass
class ListBranchResponse(WireModel):
    branches: list[str]
    current: str = ""  # empty when HEAD is detached


@dataclass
class GitRemote(WireModel):
    name: str
    url: str


@dataclass
class ListRemotesResponse(WireModel):
    remotes: list[GitRemote]


@dataclass
class GitCommitInfo(WireModel):
    hash: str
    author: str
    email: str
    message: str
    timestamp: str  # ISO 8601, the author date


@dataclass
class PortList(WireModel):
    ports: list[int]


@dataclass
class IsPortInUseResponse(WireModel):
    is_in_use: bool


@dataclass
class UpdateEnvRequest(WireModel):
    """Change the environment of processes the agent starts from now on:
    `unset` names and values starting with `unsetValuePrefix` (unless `set`
    has the name) are removed first, then `set` applies."""

    set: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    unset_value_prefix: str | None = None
