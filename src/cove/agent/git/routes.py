"""Git: the toolbox's `/git/...` routes (the official SDK's `sandbox.git`).

Each call runs the real `git` inside the sandbox as its user (`runner`), in
the repository at `path` (relative to the working directory). A missing
repository is a 404 naming it; a refusal by git is a 400 carrying git's own
stderr; credentials never reach a file (see `runner`).

  POST   /git/clone        GitCloneRequest (branch, commit_id, depth, credentials)
  GET    /git/status?path= GitStatus
  POST   /git/add          {path, files}
  POST   /git/commit       {path, message, author, email, allow_empty} → {hash}
  GET    /git/branches     ListBranchResponse;  POST creates (and checks out), DELETE deletes
  POST   /git/checkout     {path, branch}
  POST   /git/pull|push    remote, branch, credentials (push: set_upstream)
  POST   /git/init|reset|restore
  GET    /git/remotes      ListRemotesResponse; POST adds (overwrite, fetch)
  GET    /git/config?key=&scope=&path=  {value}; POST sets; POST /git/config/user
  POST   /git/credentials  stores credentials in the user's credential store
  GET    /git/history?path=  [GitCommitInfo], newest first
"""

from __future__ import annotations

import os
from urllib.parse import quote

from cove.agent.core import Agent
from cove.agent.git.runner import Credentials, GitRunner
from cove.agent.git.status import (
    BRANCH_ARGS,
    REMOTE_ARGS,
    STATUS_ARGS,
    parse_branches,
    parse_remotes,
    parse_status,
)
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.wire.errors import BadRequest
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
    ListRemotesResponse,
)

RESET_MODES = ("soft", "mixed", "hard", "merge", "keep")
SCOPES = ("global", "local", "system")
# Fields of one commit in `git log`, and the end of each commit.
_LOG_FORMAT = "--format=%H%x00%an%x00%ae%x00%aI%x00%B%x1e"


def _ok(status: int = 200) -> Response:
    return json_response({}, status)


def _name(value: str, what: str) -> str:
    """A ref or remote name: git would read a leading '-' as an option."""
    if not value or value.startswith("-"):
        raise BadRequest(f"field '{what}' must be a name, got {value!r}")
    return value


def _key(value: str | None) -> str:
    """A config key (`section.name`): git would read a leading '-' as an option."""
    if not value:
        raise BadRequest("field 'key' is required (e.g. user.name)")
    if value.startswith("-") or "." not in value:
        raise BadRequest(f"field 'key' must be a config key like user.name, got {value!r}")
    return value


class GitRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.git = GitRunner(agent)
        self.workdir = agent.config.workdir

    def register(self, router: Router) -> None:
        for method, path, handler in (
            ("POST", "/git/clone", self.clone),
            ("GET", "/git/status", self.status),
            ("POST", "/git/add", self.add),
            ("POST", "/git/commit", self.commit),
            ("GET", "/git/branches", self.branches),
            ("POST", "/git/branches", self.create_branch),
            ("DELETE", "/git/branches", self.delete_branch),
            ("POST", "/git/checkout", self.checkout),
            ("POST", "/git/pull", self.pull),
            ("POST", "/git/push", self.push),
            ("POST", "/git/init", self.init),
            ("POST", "/git/reset", self.reset),
            ("POST", "/git/restore", self.restore),
            ("GET", "/git/remotes", self.remotes),
            ("POST", "/git/remotes", self.add_remote),
            ("GET", "/git/config", self.get_config),
            ("POST", "/git/config", self.set_config),
            ("POST", "/git/config/user", self.configure_user),
            ("POST", "/git/credentials", self.authenticate),
            ("GET", "/git/history", self.history),
        ):
            router.add(method, path, handler)

    async def aclose(self) -> None:
        return None  # every git process belongs to a request, ended with it

    # -- repositories -------------------------------------------------------------

    async def clone(self, req: Request) -> Response:
        body = GitCloneRequest.from_wire(req.json())
        target = self.git.resolve(body.path)
        args = ["clone"]
        if body.branch:
            args += ["--branch", _name(body.branch, "branch")]
        if body.depth is not None:
            if body.depth < 1:
                raise BadRequest("field 'depth' must be at least 1")
            args += ["--depth", str(body.depth)]
        if body.insecure_skip_tls:
            # Before the subcommand: for this process only, not kept in the clone's config.
            args = ["-c", "http.sslVerify=false", *args]
        credentials = Credentials(body.username, body.password)
        await self.git.run([*args, "--", body.url, target], self.workdir, credentials=credentials)
        if body.commit_id:
            await self.git.run(["checkout", "--detach", _name(body.commit_id, "commit_id")], target)
        return _ok()

    async def init(self, req: Request) -> Response:
        body = GitInitRequest.from_wire(req.json())
        args = ["init", "--quiet"]
        if body.bare:
            args.append("--bare")
        if body.initial_branch:
            args.append(f"--initial-branch={_name(body.initial_branch, 'initial_branch')}")
        await self.git.run([*args, "--", self.git.resolve(body.path)], self.workdir)
        return _ok(201)

    async def status(self, req: Request) -> Response:
        repo = self.git.repo(req.query.get("path"))
        _, out = await self.git.run(STATUS_ARGS, repo)
        return json_response(parse_status(out).to_wire())

    async def history(self, req: Request) -> Response:
        repo = self.git.repo(req.query.get("path"))
        _, out = await self.git.run(["log", _LOG_FORMAT], repo)
        commits = []
        for record in out.split("\x1e"):
            fields = record.strip("\n").split("\0")
            if len(fields) == 5:
                sha, author, email, when, message = fields
                commits.append(GitCommitInfo(sha, author, email, message.strip(), when).to_wire())
        return json_response(commits)

    # -- changes ------------------------------------------------------------------

    async def add(self, req: Request) -> Response:
        body = GitAddRequest.from_wire(req.json())
        if not body.files:
            raise BadRequest("field 'files' must name at least one path ('.' for all)")
        await self.git.run(["add", "--", *body.files], self.git.repo(body.path))
        return _ok()

    async def commit(self, req: Request) -> Response:
        body = GitCommitRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        who = {
            "GIT_AUTHOR_NAME": body.author,
            "GIT_AUTHOR_EMAIL": body.email,
            "GIT_COMMITTER_NAME": body.author,
            "GIT_COMMITTER_EMAIL": body.email,
        }
        args = ["commit", "--quiet", "-m", body.message]
        if body.allow_empty:
            args.append("--allow-empty")
        await self.git.run(args, repo, env=who)
        _, sha = await self.git.run(["rev-parse", "HEAD"], repo)
        return json_response(GitCommitResponse(sha.strip()).to_wire())

    async def reset(self, req: Request) -> Response:
        body = GitResetRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        args = ["reset", "--quiet"]
        if body.mode:
            if body.mode not in RESET_MODES:
                raise BadRequest(f"field 'mode' must be one of {', '.join(RESET_MODES)}")
            args.append(f"--{body.mode}")
        if body.target:
            args.append(_name(body.target, "target"))
        if body.files:
            args += ["--", *body.files]
        await self.git.run(args, repo)
        return _ok()

    async def restore(self, req: Request) -> Response:
        body = GitRestoreRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        if not body.files:
            raise BadRequest("field 'files' must name at least one path")
        args = ["restore"]
        if body.staged:
            args.append("--staged")
        if body.worktree:
            args.append("--worktree")
        if body.source:
            args.append(f"--source={_name(body.source, 'source')}")
        await self.git.run([*args, "--", *body.files], repo)
        return _ok()

    # -- branches -----------------------------------------------------------------

    async def branches(self, req: Request) -> Response:
        repo = self.git.repo(req.query.get("path"))
        _, out = await self.git.run(BRANCH_ARGS, repo)
        return json_response(parse_branches(out).to_wire())

    async def create_branch(self, req: Request) -> Response:
        # As Daytona does: the new branch starts at HEAD and is checked out.
        body = GitBranchRequest.from_wire(req.json())
        await self.git.run(["checkout", "-b", _name(body.name, "name")], self.git.repo(body.path))
        return _ok(201)

    async def delete_branch(self, req: Request) -> Response:
        # As Daytona does: the ref goes even when its commits are merged nowhere.
        body = GitBranchRequest.from_wire(req.json())
        await self.git.run(["branch", "-D", _name(body.name, "name")], self.git.repo(body.path))
        return Response(204)

    async def checkout(self, req: Request) -> Response:
        body = GitCheckoutRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        await self.git.run(["checkout", "--quiet", _name(body.branch, "branch"), "--"], repo)
        return _ok()

    # -- remotes ------------------------------------------------------------------

    async def pull(self, req: Request) -> Response:
        body = GitPullRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        args = ["pull", "--quiet"]
        if body.remote or body.branch:
            args.append(_name(body.remote or "origin", "remote"))
        if body.branch:
            args.append(_name(body.branch, "branch"))
        await self.git.run(args, repo, credentials=Credentials(body.username, body.password))
        return _ok()

    async def push(self, req: Request) -> Response:
        body = GitPushRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        args = ["push", "--quiet"]
        if body.set_upstream:
            args.append("--set-upstream")
        # HEAD: the current branch under its own name, whatever push.default says.
        refspec = _name(body.branch, "branch") if body.branch else "HEAD"
        args += [_name(body.remote or "origin", "remote"), refspec]
        await self.git.run(args, repo, credentials=Credentials(body.username, body.password))
        return _ok()

    async def remotes(self, req: Request) -> Response:
        repo = self.git.repo(req.query.get("path"))
        _, out = await self.git.run(REMOTE_ARGS, repo, ok_codes=(0, 1))  # 1: none set
        return json_response(ListRemotesResponse(parse_remotes(out)).to_wire())

    async def add_remote(self, req: Request) -> Response:
        body = GitAddRemoteRequest.from_wire(req.json())
        repo = self.git.repo(body.path)
        name = _name(body.name, "name")
        _, out = await self.git.run(REMOTE_ARGS, repo, ok_codes=(0, 1))
        exists = any(r.name == name for r in parse_remotes(out))
        if exists and not body.overwrite:
            raise BadRequest(f"remote {name!r} already exists (set 'overwrite' to replace it)")
        verb = "set-url" if exists else "add"
        await self.git.run(["remote", verb, "--", name, body.url], repo)
        if body.fetch:
            await self.git.run(["fetch", "--quiet", name], repo)
        return _ok(201)

    # -- config -------------------------------------------------------------------

    def _scope(self, scope: str | None, path: str | None) -> tuple[str, str]:
        """(git's scope option, the directory to run in)."""
        scope = scope or "global"
        if scope not in SCOPES:
            raise BadRequest(f"field 'scope' must be one of {', '.join(SCOPES)}, got {scope!r}")
        if scope == "local":
            if not path:
                raise BadRequest("field 'path' is required when scope is 'local'")
            return "--local", self.git.repo(path)
        return f"--{scope}", self.workdir

    async def get_config(self, req: Request) -> Response:
        key = _key(req.query.get("key"))
        option, cwd = self._scope(req.query.get("scope"), req.query.get("path"))
        code, out = await self.git.run(["config", option, "--get", key], cwd, ok_codes=(0, 1))
        value = out.removesuffix("\n") if code == 0 else None
        return json_response(GitConfigResponse(value).to_wire())

    async def _set(self, option: str, cwd: str, key: str, value: str) -> None:
        await self.git.run(["config", option, key, value], cwd)

    async def set_config(self, req: Request) -> Response:
        body = GitSetConfigRequest.from_wire(req.json())
        option, cwd = self._scope(body.scope, body.path)
        await self._set(option, cwd, _key(body.key), body.value)
        return _ok()

    async def configure_user(self, req: Request) -> Response:
        body = GitConfigureUserRequest.from_wire(req.json())
        option, cwd = self._scope(body.scope, body.path)
        await self._set(option, cwd, "user.name", body.name)
        await self._set(option, cwd, "user.email", body.email)
        return _ok()

    async def authenticate(self, req: Request) -> Response:
        """The SDK's `dangerously_authenticate`: git's plain-text credential store,
        on the user's explicit request (the one place a secret is written)."""
        body = GitAuthenticateRequest.from_wire(req.json())
        protocol, host = body.protocol or "https", body.host or "github.com"
        if "/" in host or "@" in host or not protocol.isalnum():
            raise BadRequest("fields 'host' and 'protocol' must be a host name and a scheme")
        user, secret = quote(body.username, safe=""), quote(body.password, safe="")
        line = f"{protocol}://{user}:{secret}@{host}"
        store = os.path.join(self.agent.base_env()["HOME"], ".git-credentials")
        prefix = f"{protocol}://"
        kept = []
        if os.path.exists(store):
            with open(store) as f:
                kept = [
                    entry
                    for entry in f.read().splitlines()
                    if not (entry.startswith(prefix) and entry.endswith(f"@{host}"))
                ]
        fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join([*kept, line]) + "\n")
        await self._set("--global", self.workdir, "credential.helper", "store")
        return _ok()
