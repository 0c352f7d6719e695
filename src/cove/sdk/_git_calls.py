"""`sandbox.git` requests, built once for both faces (no I/O here).

Each method returns the `Call` for one toolbox `/git/...` route, its body
written by the wire models the agent validates with. Credentials travel in
the request body of that one call only; the agent never stores them.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from cove.sdk._base import LIFECYCLE_TIMEOUT, Call, Toolbox, wire_body
from cove.wire.errors import BadRequest
from cove.wire.model import WireModel
from cove.wire.protocol.git import (
    GitAddRemoteRequest,
    GitAddRequest,
    GitAuthenticateRequest,
    GitBranchRequest,
    GitCheckoutRequest,
    GitCloneRequest,
    GitCommitInfo,
    GitCommitRequest,
    GitCommitResponse,
    GitConfigResponse,
    GitConfigureUserRequest,
    GitInitRequest,
    GitPullRequest,
    GitPushRequest,
    GitResetRequest,
    GitRestoreRequest,
    GitSetConfigRequest,
    GitStatus,
    ListBranchResponse,
    ListRemotesResponse,
)

M = TypeVar("M", bound=WireModel)

# Clone, pull and push move a whole repository's objects: with no
# `request_timeout` they wait as long as the sandbox's git takes.
NETWORK_TIMEOUT: float | None = None


def request_timeout(value: float | None, default: float | None) -> float | None:
    """Daytona's rule for `request_timeout`: None keeps the default, 0 waits
    for ever, a fraction of a second rounds up to 1, a negative one is refused."""
    if value is None:
        return default
    if value < 0 or math.isnan(value):
        raise BadRequest(f"request_timeout must be 0 or more seconds, got {value}")
    return None if value == 0 else max(1.0, float(value))


def _model(cls: type[M], what: str) -> Any:
    return lambda data: cls.from_wire(data, what)


def _none(_: Any) -> None:
    return None


class GitCalls:
    def __init__(self, toolbox: Toolbox) -> None:
        self.tb = toolbox

    def _send(
        self, method: str, path: str, what: str, body: WireModel | None, timeout: float | None,
        parse: Any = _none, params: dict[str, str] | None = None,
    ) -> Call[Any]:  # fmt: skip
        json = wire_body(body) if body is not None else None
        # Calls that answer nothing useful ({} or 204) read no body.
        return Call(method, self.tb.url(path), what, parse, json, params, timeout,
                    parse is not _none)  # fmt: skip

    def _local(self, value: float | None) -> float | None:
        return request_timeout(value, LIFECYCLE_TIMEOUT)

    # -- repositories -------------------------------------------------------------

    def clone(self, req: GitCloneRequest, timeout: float | None) -> Call[None]:
        timeout = request_timeout(timeout, NETWORK_TIMEOUT)
        return self._send("POST", "/git/clone", "git clone", req, timeout)

    def init(self, req: GitInitRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/init", "git init", req, self._local(timeout))

    def status(self, path: str, timeout: float | None) -> Call[GitStatus]:
        return self._send("GET", "/git/status", "git status", None, self._local(timeout),
                          _model(GitStatus, "git status"), {"path": path})  # fmt: skip

    def history(self, path: str, timeout: float | None) -> Call[list[GitCommitInfo]]:
        def parse(data: Any) -> list[GitCommitInfo]:
            return [GitCommitInfo.from_wire(item, "commit") for item in data or []]

        return self._send("GET", "/git/history", "git history", None, self._local(timeout),
                          parse, {"path": path})  # fmt: skip

    # -- changes ------------------------------------------------------------------

    def add(self, req: GitAddRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/add", "git add", req, self._local(timeout))

    def commit(self, req: GitCommitRequest, timeout: float | None) -> Call[GitCommitResponse]:
        return self._send("POST", "/git/commit", "git commit", req, self._local(timeout),
                          _model(GitCommitResponse, "git commit"))  # fmt: skip

    def reset(self, req: GitResetRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/reset", "git reset", req, self._local(timeout))

    def restore(self, req: GitRestoreRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/restore", "git restore", req, self._local(timeout))

    # -- branches -----------------------------------------------------------------

    def branches(self, path: str, timeout: float | None) -> Call[ListBranchResponse]:
        return self._send("GET", "/git/branches", "git branches", None, self._local(timeout),
                          _model(ListBranchResponse, "branch list"), {"path": path})  # fmt: skip

    def create_branch(self, req: GitBranchRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/branches", "create branch", req, self._local(timeout))

    def delete_branch(self, req: GitBranchRequest, timeout: float | None) -> Call[None]:
        return self._send("DELETE", "/git/branches", "delete branch", req, self._local(timeout))

    def checkout(self, req: GitCheckoutRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/checkout", "checkout branch", req, self._local(timeout))

    # -- remotes ------------------------------------------------------------------

    def pull(self, req: GitPullRequest, timeout: float | None) -> Call[None]:
        timeout = request_timeout(timeout, NETWORK_TIMEOUT)
        return self._send("POST", "/git/pull", "git pull", req, timeout)

    def push(self, req: GitPushRequest, timeout: float | None) -> Call[None]:
        timeout = request_timeout(timeout, NETWORK_TIMEOUT)
        return self._send("POST", "/git/push", "git push", req, timeout)

    def remote_add(self, req: GitAddRemoteRequest, timeout: float | None) -> Call[None]:
        default = NETWORK_TIMEOUT if req.fetch else LIFECYCLE_TIMEOUT
        timeout = request_timeout(timeout, default)
        return self._send("POST", "/git/remotes", "add remote", req, timeout)

    def remotes(self, path: str, timeout: float | None) -> Call[ListRemotesResponse]:
        return self._send("GET", "/git/remotes", "git remotes", None, self._local(timeout),
                          _model(ListRemotesResponse, "remote list"), {"path": path})  # fmt: skip

    # -- config -------------------------------------------------------------------

    def get_config(
        self, key: str, scope: str, path: str | None, timeout: float | None
    ) -> Call[str | None]:
        params = {"key": key, "scope": scope}
        if path is not None:
            params["path"] = path

        def parse(data: Any) -> str | None:
            return GitConfigResponse.from_wire(data, "git config").value

        return self._send("GET", "/git/config", "get git config", None, self._local(timeout),
                          parse, params)  # fmt: skip

    def set_config(self, req: GitSetConfigRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/config", "set git config", req, self._local(timeout))

    def configure_user(self, req: GitConfigureUserRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/config/user", "configure git user", req,
                          self._local(timeout))  # fmt: skip

    def authenticate(self, req: GitAuthenticateRequest, timeout: float | None) -> Call[None]:
        return self._send("POST", "/git/credentials", "store git credentials", req,
                          self._local(timeout))  # fmt: skip
