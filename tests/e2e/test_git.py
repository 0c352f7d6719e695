"""Every `sandbox.git` call of the unmodified official SDK, against the real
`git` inside a sandbox; remotes are bare repositories in the sandbox
(`file://`) and a smart-HTTP server on the sandbox's own loopback (sandboxes
have no egress yet)."""

from __future__ import annotations

import base64
import itertools
import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.security.helpers import sandbox_dir
from tests.serverproc import ServerProcess

SECRET = "s3cret-T0KEN-never-on-disk"
HTTP_PORT = 8719
_names = itertools.count()


def sh(sandbox: Any, command: str, cwd: str | None = None) -> str:
    r = sandbox.process.exec(command, cwd=cwd)
    assert r.exit_code == 0, r.result
    return str(r.result)


def new_repo(sandbox: Any, files: dict[str, str] | None = None) -> str:
    """A fresh repository on `main` with one commit (made through the SDK)."""
    path = f"repo-{next(_names)}"
    sandbox.git.init(path, initial_branch="main")
    for name, text in (files or {"README.md": "hello\n"}).items():
        sh(sandbox, f"printf %s {shlex.quote(text)} > {shlex.quote(name)}", cwd=path)
    sandbox.git.add(path, ["."])
    sandbox.git.commit(path, "first", "Ada Lovelace", "ada@example.com")
    return path


def bare_origin(sandbox: Any, repo: str) -> str:
    """A bare repository holding `repo`'s main, as `repo`'s origin; its file:// URL."""
    bare = f"{repo}-origin.git"
    sandbox.git.init(bare, bare=True, initial_branch="main")
    url = f"file://{sandbox.get_work_dir()}/{bare}"
    sandbox.git.remote_add(repo, "origin", url)
    sandbox.git.push(repo, set_upstream=True)
    return url


def test_init_with_initial_branch_and_bare(sandbox: Any) -> None:
    sandbox.git.init("init-a", initial_branch="trunk")
    assert sh(sandbox, "git symbolic-ref HEAD", cwd="init-a").strip() == "refs/heads/trunk"
    sandbox.git.init("init-b.git", bare=True)
    assert sh(sandbox, "git rev-parse --is-bare-repository", cwd="init-b.git").strip() == "true"


def test_add_and_status(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    sh(sandbox, "echo new > staged.txt; echo x > loose.txt; echo changed >> README.md", repo)
    sandbox.git.add(repo, ["staged.txt"])
    status = sandbox.git.status(repo)
    assert status.current_branch == "main"
    assert status.detached is False
    by_name = {f.name: (f.staging.value, f.worktree.value) for f in status.file_status}
    assert by_name == {
        "staged.txt": ("Added", "Unmodified"),
        "loose.txt": ("Untracked", "Untracked"),
        "README.md": ("Unmodified", "Modified"),
    }


def test_commit_with_author_and_allow_empty(sandbox: Any) -> None:
    from daytona import DaytonaError

    repo = new_repo(sandbox)
    sh(sandbox, "echo more >> README.md", repo)
    sandbox.git.add(repo, ["README.md"])
    commit = sandbox.git.commit(repo, "second", "Grace Hopper", "grace@example.com")
    log = sh(sandbox, "git log -1 --format='%H|%an|%ae|%cn|%s'", repo).strip()
    assert log == f"{commit.sha}|Grace Hopper|grace@example.com|Grace Hopper|second"
    with pytest.raises(DaytonaError) as refused:
        sandbox.git.commit(repo, "nothing", "Grace Hopper", "grace@example.com")
    assert refused.value.status_code == 400
    assert "nothing to commit" in str(refused.value)
    empty = sandbox.git.commit(repo, "empty", "Grace Hopper", "g@x.org", allow_empty=True)
    assert sh(sandbox, "git rev-parse HEAD~1", repo).strip() == commit.sha
    assert sh(sandbox, "git rev-parse HEAD", repo).strip() == empty.sha


def test_branches_create_checkout_delete(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    sandbox.git.create_branch(repo, "feature")
    listed = sandbox.git.branches(repo)
    assert sorted(listed.branches) == ["feature", "main"]
    assert listed.current == "feature"  # created and checked out, as on Daytona
    sandbox.git.checkout_branch(repo, "main")
    assert sandbox.git.branches(repo).current == "main"
    assert sandbox.git.status(repo).current_branch == "main"
    sandbox.git.delete_branch(repo, "feature")
    assert sandbox.git.branches(repo).branches == ["main"]


def test_clone_branch_and_commit(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    first = sh(sandbox, "git rev-parse HEAD", repo).strip()
    url = bare_origin(sandbox, repo)
    sandbox.git.create_branch(repo, "dev")
    sh(sandbox, "echo dev > dev.txt", repo)
    sandbox.git.add(repo, ["dev.txt"])
    sandbox.git.commit(repo, "on dev", "Ada Lovelace", "ada@example.com")
    sandbox.git.push(repo, branch="dev")

    sandbox.git.clone(url, f"{repo}-plain")
    assert sandbox.git.branches(f"{repo}-plain").current == "main"
    sandbox.git.clone(url, f"{repo}-dev", branch="dev")
    assert sandbox.git.branches(f"{repo}-dev").current == "dev"
    assert sh(sandbox, "cat dev.txt", f"{repo}-dev").strip() == "dev"
    sandbox.git.clone(url, f"{repo}-old", commit_id=first)
    status = sandbox.git.status(f"{repo}-old")
    assert status.detached is True
    assert sh(sandbox, "git rev-parse HEAD", f"{repo}-old").strip() == first


def test_push_pull_and_tracking(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    url = bare_origin(sandbox, repo)
    other = f"{repo}-other"
    sandbox.git.clone(url, other)
    sh(sandbox, "echo two > two.txt", repo)
    sandbox.git.add(repo, ["two.txt"])
    sandbox.git.commit(repo, "two", "Ada Lovelace", "ada@example.com")
    ahead = sandbox.git.status(repo)
    assert (ahead.ahead, ahead.behind, ahead.upstream) == (1, 0, "origin/main")
    assert ahead.branch_published is True
    sandbox.git.push(repo)
    assert sandbox.git.status(repo).ahead == 0
    sandbox.git.pull(other)
    assert sh(sandbox, "cat two.txt", other).strip() == "two"
    sandbox.git.pull(other, remote="origin", branch="main")  # explicit remote and branch


def test_reset(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    first = sh(sandbox, "git rev-parse HEAD", repo).strip()
    sh(sandbox, "echo 2 > b.txt", repo)
    sandbox.git.add(repo, ["b.txt"])
    sandbox.git.commit(repo, "b", "Ada Lovelace", "ada@example.com")
    sh(sandbox, "echo 3 > c.txt", repo)
    sandbox.git.add(repo, ["c.txt"])
    sandbox.git.reset(repo)  # mixed to HEAD: unstaged, kept
    assert {f.name: f.staging.value for f in sandbox.git.status(repo).file_status} == {
        "c.txt": "Untracked"
    }
    sandbox.git.reset(repo, mode="hard", target="HEAD~1")
    assert sh(sandbox, "git rev-parse HEAD", repo).strip() == first
    assert sh(sandbox, "ls", repo).split() == ["README.md", "c.txt"]


def test_restore(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    sh(sandbox, "echo changed > README.md", repo)
    sandbox.git.restore(repo, ["README.md"])
    assert sh(sandbox, "cat README.md", repo) == "hello\n"
    sh(sandbox, "echo staged > README.md", repo)
    sandbox.git.add(repo, ["README.md"])
    sandbox.git.restore(repo, ["README.md"], staged=True)
    (entry,) = sandbox.git.status(repo).file_status
    assert (entry.staging.value, entry.worktree.value) == ("Unmodified", "Modified")
    sandbox.git.restore(repo, ["README.md"], source="HEAD", worktree=True)
    assert sh(sandbox, "cat README.md", repo) == "hello\n"


def test_remote_add_remotes_and_remote_get(sandbox: Any) -> None:
    from daytona import DaytonaError

    repo = new_repo(sandbox)
    source = new_repo(sandbox)
    url = f"file://{sandbox.get_work_dir()}/{source}"
    sandbox.git.remote_add(repo, "upstream", url, fetch=True)
    assert (
        sh(sandbox, "git rev-parse upstream/main", repo).strip()
        == sh(sandbox, "git rev-parse HEAD", source).strip()
    )
    sandbox.git.remote_add(repo, "mirror", "https://git.example.invalid/m.git")
    remotes = sandbox.git.remotes(repo)
    assert {(r.name, r.url) for r in remotes.remotes} == {
        ("upstream", url),
        ("mirror", "https://git.example.invalid/m.git"),
    }
    assert sandbox.git.remote_get(repo, "mirror") == "https://git.example.invalid/m.git"
    assert sandbox.git.remote_get(repo, "nope") is None
    with pytest.raises(DaytonaError) as exists:
        sandbox.git.remote_add(repo, "mirror", "https://other.invalid/x.git")
    assert exists.value.status_code == 400 and "already exists" in str(exists.value)
    sandbox.git.remote_add(repo, "mirror", "https://other.invalid/x.git", overwrite=True)
    assert sandbox.git.remote_get(repo, "mirror") == "https://other.invalid/x.git"


def test_get_set_config_and_configure_user(sandbox: Any) -> None:
    repo = new_repo(sandbox)
    assert sandbox.git.get_config("cove.test-unset") is None
    sandbox.git.set_config("cove.color", "teal")
    assert sandbox.git.get_config("cove.color") == "teal"
    assert "teal" in sh(sandbox, "cat ~/.gitconfig")
    sandbox.git.set_config("cove.color", "plum", scope="local", path=repo)
    assert sandbox.git.get_config("cove.color", scope="local", path=repo) == "plum"
    assert sandbox.git.get_config("cove.color") == "teal"
    sandbox.git.configure_user("Linus Example", "linus@example.com")
    assert sandbox.git.get_config("user.name") == "Linus Example"
    assert sandbox.git.get_config("user.email") == "linus@example.com"
    sandbox.git.configure_user("Local Person", "local@example.com", scope="local", path=repo)
    assert sh(sandbox, "git config --local user.name", repo).strip() == "Local Person"


def test_dangerously_authenticate_stores_what_was_asked(sandbox: Any) -> None:
    sandbox.git.dangerously_authenticate("bot", "p@ss word", host="git.example.invalid")
    assert (
        sh(sandbox, "cat ~/.git-credentials")
        .strip()
        .endswith("https://bot:p%40ss%20word@git.example.invalid")
    )
    assert sandbox.git.get_config("credential.helper") == "store"
    sandbox.git.dangerously_authenticate("bot", "newer", host="git.example.invalid")
    stored = sh(sandbox, "cat ~/.git-credentials")
    assert "newer@" in stored and "p%40ss" not in stored


# -- credentials over HTTP: never written anywhere ----------------------------------


@pytest.fixture(scope="module")
def http_remote(sandbox: Any) -> str:
    """A bare repository served over smart HTTP (basic auth) inside the sandbox."""
    repo = new_repo(sandbox, {"README.md": "over http\n"})
    sandbox.git.init("served/origin.git", bare=True, initial_branch="main")
    sandbox.git.remote_add(repo, "origin", f"file://{sandbox.get_work_dir()}/served/origin.git")
    sandbox.git.push(repo)
    script = (Path(__file__).parent / "git_http_server.py").read_bytes()
    encoded = base64.b64encode(script).decode()
    r = sandbox.process.exec(
        f"echo {encoded} | base64 -d > /tmp/git_http_server.py && "
        f"python3 /tmp/git_http_server.py served {HTTP_PORT} </dev/null >/dev/null 2>&1",
        env={"GIT_HTTP_USER": "bot", "GIT_HTTP_PASSWORD": SECRET},
    )
    assert r.exit_code == 0, r.result
    return f"http://127.0.0.1:{HTTP_PORT}/origin.git"


def test_http_clone_push_pull_with_credentials(sandbox: Any, http_remote: str) -> None:
    from daytona import DaytonaError

    with pytest.raises(DaytonaError) as refused:
        sandbox.git.clone(http_remote, "http-none")
    assert refused.value.status_code == 400
    assert "Authentication failed" in str(refused.value) or "Username" in str(refused.value)

    sandbox.git.clone(http_remote, "http-a", username="bot", password=SECRET)
    assert sh(sandbox, "cat README.md", "http-a").strip() == "over http"
    assert sandbox.git.remote_get("http-a", "origin") == http_remote  # no user:pass in it
    sandbox.git.clone(http_remote, "http-b", username="bot", password=SECRET)
    sh(sandbox, "echo pushed > p.txt", "http-a")
    sandbox.git.add("http-a", ["p.txt"])
    sandbox.git.commit("http-a", "p", "Ada Lovelace", "ada@example.com")
    with pytest.raises(DaytonaError):
        sandbox.git.push("http-a")  # no credentials: nothing remembered them
    sandbox.git.push("http-a", username="bot", password=SECRET)
    sandbox.git.pull("http-b", username="bot", password=SECRET)
    assert sh(sandbox, "cat p.txt", "http-b").strip() == "pushed"


def test_credentials_are_nowhere_on_disk(
    sandbox: Any, http_remote: str, server: ServerProcess
) -> None:
    sandbox.git.clone(http_remote, "http-c", username="bot", password=SECRET)
    sandbox.git.pull("http-c", username="bot", password=SECRET)
    sandbox.git.push("http-c", username="bot", password=SECRET)
    assert SECRET not in sh(sandbox, "cat .git/config", "http-c")
    root = sandbox_dir(server, sandbox.id)
    assert (root / "control" / "agent.log").exists()
    holding = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and SECRET.encode() in path.read_bytes():
                holding.append(str(path.relative_to(root)))
    assert holding == []
    # Nor in the control plane's store (WAL included), its log, or an error's answer.
    from daytona import DaytonaError

    missing = http_remote.replace("origin.git", "missing.git")
    with pytest.raises(DaytonaError) as refused:
        sandbox.git.clone(missing, "http-d", username="bot", password=SECRET)
    assert "not found" in str(refused.value) and SECRET not in str(refused.value)
    in_url = missing.replace("http://", f"http://bot:{SECRET}@")
    with pytest.raises(DaytonaError) as refused:
        sandbox.git.clone(in_url, "http-e")
    assert SECRET not in str(refused.value)
    store = b"".join(p.read_bytes() for p in server.data_dir.glob("cove.db*"))
    assert SECRET.encode() not in store
    assert SECRET not in "".join(server.output)


# -- bad input ----------------------------------------------------------------------


def test_unknown_repository_is_a_404_naming_it(sandbox: Any) -> None:
    from daytona import DaytonaNotFoundError

    with pytest.raises(DaytonaNotFoundError) as missing:
        sandbox.git.status("no/such/repo")
    assert "no/such/repo" in str(missing.value)
    sh(sandbox, "mkdir -p plain-dir")
    with pytest.raises(DaytonaNotFoundError) as plain:
        sandbox.git.branches("plain-dir")
    assert "plain-dir" in str(plain.value) and "not a git repository" in str(plain.value)


def test_git_failure_is_a_400_with_gits_stderr(sandbox: Any) -> None:
    from daytona import DaytonaError

    repo = new_repo(sandbox)
    with pytest.raises(DaytonaError) as failed:
        sandbox.git.checkout_branch(repo, "does-not-exist")
    assert failed.value.status_code == 400
    assert "fatal: invalid reference: does-not-exist" in str(failed.value)
    with pytest.raises(DaytonaError) as bad_mode:
        sandbox.git.reset(repo, mode="sideways")
    assert bad_mode.value.status_code == 400 and "mode" in str(bad_mode.value)
    with pytest.raises(DaytonaError) as bad_scope:
        sandbox.git.set_config("a.b", "c", scope="local")
    assert bad_scope.value.status_code == 400 and "path" in str(bad_scope.value)
