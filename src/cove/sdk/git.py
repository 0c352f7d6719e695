"""`sandbox.git`: the official SDK's git calls, by the same names, on both faces.

Requests are built once in `_git_calls`; `Git` and `AsyncGit` only send them.
The real `git` runs inside the sandbox as its user. Paths are repositories
relative to the sandbox's working directory, or absolute. `request_timeout`
bounds the wait on this side only (Daytona's rule: 0 waits for ever). Beyond
Daytona: `history` (the log, newest first).
"""

from __future__ import annotations

from cove.sdk._base import Toolbox
from cove.sdk._git_calls import GitCalls
from cove.sdk._transport import AsyncTransport, SyncTransport
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

__all__ = ["AsyncGit", "Git"]

Seconds = float | None  # a `request_timeout`


def remote_url(remotes: ListRemotesResponse, name: str) -> str | None:
    """The URL of the remote `name`, or None when the repository has none by that name."""
    return next((r.url for r in remotes.remotes if r.name == name), None)


class Git:
    def __init__(self, transport: SyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = GitCalls(toolbox)

    def clone(
        self, url: str, path: str, branch: str | None = None, commit_id: str | None = None,
        username: str | None = None, password: str | None = None,
        insecure_skip_tls: bool | None = None, depth: int | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitCloneRequest(url, path, branch, commit_id, username, password,
                              insecure_skip_tls, depth)  # fmt: skip
        self._t.call(self.calls.clone(req, request_timeout))

    def init(
        self, path: str, bare: bool = False, initial_branch: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        self._t.call(self.calls.init(GitInitRequest(path, bare, initial_branch), request_timeout))

    def status(self, path: str, request_timeout: Seconds = None) -> GitStatus:
        return self._t.call(self.calls.status(path, request_timeout))

    def history(self, path: str, request_timeout: Seconds = None) -> list[GitCommitInfo]:
        return self._t.call(self.calls.history(path, request_timeout))

    def add(self, path: str, files: list[str], request_timeout: Seconds = None) -> None:
        self._t.call(self.calls.add(GitAddRequest(path, files), request_timeout))

    def commit(
        self, path: str, message: str, author: str, email: str, allow_empty: bool = False,
        request_timeout: Seconds = None,
    ) -> GitCommitResponse:  # fmt: skip
        req = GitCommitRequest(path, message, author, email, allow_empty)
        return self._t.call(self.calls.commit(req, request_timeout))

    def reset(
        self, path: str, mode: str | None = None, target: str | None = None,
        files: list[str] | None = None, request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitResetRequest(path, mode, target, files)
        self._t.call(self.calls.reset(req, request_timeout))

    def restore(
        self, path: str, files: list[str], staged: bool | None = None,
        worktree: bool | None = None, source: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitRestoreRequest(path, files, staged, worktree, source)
        self._t.call(self.calls.restore(req, request_timeout))

    def branches(self, path: str, request_timeout: Seconds = None) -> ListBranchResponse:
        return self._t.call(self.calls.branches(path, request_timeout))

    def create_branch(self, path: str, name: str, request_timeout: Seconds = None) -> None:
        """As Daytona's: the branch starts at HEAD and is checked out."""
        self._t.call(self.calls.create_branch(GitBranchRequest(path, name), request_timeout))

    def delete_branch(self, path: str, name: str, request_timeout: Seconds = None) -> None:
        self._t.call(self.calls.delete_branch(GitBranchRequest(path, name), request_timeout))

    def checkout_branch(self, path: str, branch: str, request_timeout: Seconds = None) -> None:
        self._t.call(self.calls.checkout(GitCheckoutRequest(path, branch), request_timeout))

    def pull(
        self, path: str, username: str | None = None, password: str | None = None,
        branch: str | None = None, remote: str | None = None, request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitPullRequest(path, username, password, branch, remote)
        self._t.call(self.calls.pull(req, request_timeout))

    def push(
        self, path: str, username: str | None = None, password: str | None = None,
        branch: str | None = None, remote: str | None = None, set_upstream: bool = False,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitPushRequest(path, username, password, branch, remote, set_upstream)
        self._t.call(self.calls.push(req, request_timeout))

    def remote_add(
        self, path: str, name: str, url: str, fetch: bool = False, overwrite: bool = False,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitAddRemoteRequest(path, name, url, fetch, overwrite)
        self._t.call(self.calls.remote_add(req, request_timeout))

    def remotes(self, path: str, request_timeout: Seconds = None) -> ListRemotesResponse:
        return self._t.call(self.calls.remotes(path, request_timeout))

    def remote_get(self, path: str, name: str, request_timeout: Seconds = None) -> str | None:
        return remote_url(self.remotes(path, request_timeout), name)

    def get_config(
        self, key: str, scope: str = "global", path: str | None = None,
        request_timeout: Seconds = None,
    ) -> str | None:  # fmt: skip
        return self._t.call(self.calls.get_config(key, scope, path, request_timeout))

    def set_config(
        self, key: str, value: str, scope: str = "global", path: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitSetConfigRequest(key, value, scope, path)
        self._t.call(self.calls.set_config(req, request_timeout))

    def configure_user(
        self, name: str, email: str, scope: str = "global", path: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitConfigureUserRequest(name, email, scope, path)
        self._t.call(self.calls.configure_user(req, request_timeout))

    def dangerously_authenticate(
        self, username: str, password: str, host: str | None = None,
        protocol: str | None = None, request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        """Stores the credentials in plain text in the sandbox user's git credential store."""
        req = GitAuthenticateRequest(username, password, host, protocol)
        self._t.call(self.calls.authenticate(req, request_timeout))


class AsyncGit:
    def __init__(self, transport: AsyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = GitCalls(toolbox)

    async def clone(
        self, url: str, path: str, branch: str | None = None, commit_id: str | None = None,
        username: str | None = None, password: str | None = None,
        insecure_skip_tls: bool | None = None, depth: int | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitCloneRequest(url, path, branch, commit_id, username, password,
                              insecure_skip_tls, depth)  # fmt: skip
        await self._t.call(self.calls.clone(req, request_timeout))

    async def init(
        self, path: str, bare: bool = False, initial_branch: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        await self._t.call(
            self.calls.init(GitInitRequest(path, bare, initial_branch), request_timeout)
        )

    async def status(self, path: str, request_timeout: Seconds = None) -> GitStatus:
        return await self._t.call(self.calls.status(path, request_timeout))

    async def history(self, path: str, request_timeout: Seconds = None) -> list[GitCommitInfo]:
        return await self._t.call(self.calls.history(path, request_timeout))

    async def add(self, path: str, files: list[str], request_timeout: Seconds = None) -> None:
        await self._t.call(self.calls.add(GitAddRequest(path, files), request_timeout))

    async def commit(
        self, path: str, message: str, author: str, email: str, allow_empty: bool = False,
        request_timeout: Seconds = None,
    ) -> GitCommitResponse:  # fmt: skip
        req = GitCommitRequest(path, message, author, email, allow_empty)
        return await self._t.call(self.calls.commit(req, request_timeout))

    async def reset(
        self, path: str, mode: str | None = None, target: str | None = None,
        files: list[str] | None = None, request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitResetRequest(path, mode, target, files)
        await self._t.call(self.calls.reset(req, request_timeout))

    async def restore(
        self, path: str, files: list[str], staged: bool | None = None,
        worktree: bool | None = None, source: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitRestoreRequest(path, files, staged, worktree, source)
        await self._t.call(self.calls.restore(req, request_timeout))

    async def branches(self, path: str, request_timeout: Seconds = None) -> ListBranchResponse:
        return await self._t.call(self.calls.branches(path, request_timeout))

    async def create_branch(self, path: str, name: str, request_timeout: Seconds = None) -> None:
        """As Daytona's: the branch starts at HEAD and is checked out."""
        await self._t.call(self.calls.create_branch(GitBranchRequest(path, name), request_timeout))

    async def delete_branch(self, path: str, name: str, request_timeout: Seconds = None) -> None:
        await self._t.call(self.calls.delete_branch(GitBranchRequest(path, name), request_timeout))

    async def checkout_branch(
        self, path: str, branch: str, request_timeout: Seconds = None
    ) -> None:
        await self._t.call(self.calls.checkout(GitCheckoutRequest(path, branch), request_timeout))

    async def pull(
        self, path: str, username: str | None = None, password: str | None = None,
        branch: str | None = None, remote: str | None = None, request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitPullRequest(path, username, password, branch, remote)
        await self._t.call(self.calls.pull(req, request_timeout))

    async def push(
        self, path: str, username: str | None = None, password: str | None = None,
        branch: str | None = None, remote: str | None = None, set_upstream: bool = False,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitPushRequest(path, username, password, branch, remote, set_upstream)
        await self._t.call(self.calls.push(req, request_timeout))

    async def remote_add(
        self, path: str, name: str, url: str, fetch: bool = False, overwrite: bool = False,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitAddRemoteRequest(path, name, url, fetch, overwrite)
        await self._t.call(self.calls.remote_add(req, request_timeout))

    async def remotes(self, path: str, request_timeout: Seconds = None) -> ListRemotesResponse:
        return await self._t.call(self.calls.remotes(path, request_timeout))

    async def remote_get(self, path: str, name: str, request_timeout: Seconds = None) -> str | None:
        return remote_url(await self.remotes(path, request_timeout), name)

    async def get_config(
        self, key: str, scope: str = "global", path: str | None = None,
        request_timeout: Seconds = None,
    ) -> str | None:  # fmt: skip
        return await self._t.call(self.calls.get_config(key, scope, path, request_timeout))

    async def set_config(
        self, key: str, value: str, scope: str = "global", path: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitSetConfigRequest(key, value, scope, path)
        await self._t.call(self.calls.set_config(req, request_timeout))

    async def configure_user(
        self, name: str, email: str, scope: str = "global", path: str | None = None,
        request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        req = GitConfigureUserRequest(name, email, scope, path)
        await self._t.call(self.calls.configure_user(req, request_timeout))

    async def dangerously_authenticate(
        self, username: str, password: str, host: str | None = None,
        protocol: str | None = None, request_timeout: Seconds = None,
    ) -> None:  # fmt: skip
        """Stores the credentials in plain text in the sandbox user's git credential store."""
        req = GitAuthenticateRequest(username, password, host, protocol)
        await self._t.call(self.calls.authenticate(req, request_timeout))
