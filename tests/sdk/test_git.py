"""`sandbox.git` of the Cove SDK, sync and async, plus its environment and port
helpers, against a real server and the real `git` inside a sandbox. Remotes
are bare repositories in the sandbox (`file://`) and the test smart-HTTP
server on the sandbox's own loopback (sandboxes have no egress yet). Content
is checked inside the sandbox with `exec`."""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import shlex
from pathlib import Path

import pytest

from cove.sdk import AsyncCove, AsyncGit, Git, Sandbox
from cove.wire.errors import BadRequest, NotFound
from tests.serverproc import ServerProcess

SECRET = "sdk-T0KEN-never-on-disk"
HTTP_PORT = 8723
ADA = ("Ada Lovelace", "ada@example.com")
_names = itertools.count()


def sh(sb: Sandbox, command: str, cwd: str | None = None) -> str:
    r = sb.process.exec(command, cwd=cwd)
    assert r.exit_code == 0, r.result
    return r.result


def new_repo(sb: Sandbox, text: str = "hello\n") -> str:
    """A fresh repository on `main` with one commit, made through the SDK."""
    path = f"sdk-repo-{next(_names)}"
    sb.git.init(path, initial_branch="main")
    sh(sb, f"printf %s {shlex.quote(text)} > README.md", path)
    sb.git.add(path, ["."])
    sb.git.commit(path, "first", *ADA)
    return path


def test_both_faces_have_the_same_methods() -> None:
    def shape(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(fn).parameters)
            for name, fn in vars(cls).items()
            if callable(fn) and not name.startswith("_")
        }

    assert shape(Git) == shape(AsyncGit)
    assert {"clone", "status", "branches", "create_branch", "delete_branch", "checkout_branch",
            "add", "commit", "push", "pull", "history"} <= set(shape(Git))  # fmt: skip
    for name, fn in vars(AsyncGit).items():
        if callable(fn) and not name.startswith("_"):
            assert inspect.iscoroutinefunction(fn), name


def test_init_add_status_commit_history(csb: Sandbox) -> None:
    repo = new_repo(csb)
    assert sh(csb, "git symbolic-ref HEAD", repo).strip() == "refs/heads/main"
    sh(csb, "echo new > staged.txt; echo x > loose.txt; echo changed >> README.md", repo)
    csb.git.add(repo, ["staged.txt"])
    status = csb.git.status(repo)
    assert status.current_branch == "main" and status.detached is False
    assert {f.name: (f.staging, f.worktree) for f in status.file_status} == {
        "staged.txt": ("Added", "Unmodified"),
        "loose.txt": ("Untracked", "Untracked"),
        "README.md": ("Unmodified", "Modified"),
    }
    made = csb.git.commit(repo, "second\n\nbody", "Grace Hopper", "grace@example.com")
    assert made.hash == sh(csb, "git rev-parse HEAD", repo).strip()
    empty = csb.git.commit(repo, "nothing", *ADA, allow_empty=True)
    log = csb.git.history(repo)
    assert [c.hash for c in log][:2] == [empty.hash, made.hash]
    assert [c.message for c in log] == ["nothing", "second\n\nbody", "first"]
    assert (log[1].author, log[1].email) == ("Grace Hopper", "grace@example.com")
    assert log[1].timestamp[:4].isdigit()
    with pytest.raises(BadRequest) as nothing:
        csb.git.commit(repo, "nothing again", *ADA)
    assert nothing.value.message.startswith("git commit failed: ")
    assert "no changes added to commit" in nothing.value.message
    assert "git commit failed: git commit" not in nothing.value.message


def test_branches_create_checkout_delete(csb: Sandbox) -> None:
    repo = new_repo(csb)
    csb.git.create_branch(repo, "feature")  # as Daytona's: checked out at once
    got = csb.git.branches(repo)
    assert sorted(got.branches) == ["feature", "main"] and got.current == "feature"
    csb.git.checkout_branch(repo, "main")
    assert csb.git.status(repo).current_branch == "main"
    csb.git.delete_branch(repo, "feature")
    assert csb.git.branches(repo).branches == ["main"]
    with pytest.raises(BadRequest) as missing:
        csb.git.checkout_branch(repo, "does-not-exist")
    assert "invalid reference: does-not-exist" in missing.value.message


def test_reset_and_restore(csb: Sandbox) -> None:
    repo = new_repo(csb, "one\n")
    sh(csb, "echo two > README.md", repo)
    csb.git.add(repo, ["README.md"])
    csb.git.commit(repo, "two", *ADA)
    csb.git.reset(repo, mode="hard", target="HEAD~1")
    assert sh(csb, "cat README.md", repo) == "one\n"
    sh(csb, "echo scribble > README.md", repo)
    csb.git.restore(repo, ["README.md"])
    assert sh(csb, "cat README.md", repo) == "one\n"
    with pytest.raises(BadRequest) as bad:
        csb.git.reset(repo, mode="sideways")
    assert "mode" in bad.value.message


def test_remotes_push_pull_clone(csb: Sandbox) -> None:
    repo = new_repo(csb, "origin text\n")
    bare = f"{repo}-origin.git"
    csb.git.init(bare, bare=True, initial_branch="main")
    url = f"file://{csb.get_work_dir()}/{bare}"
    csb.git.remote_add(repo, "origin", url)
    assert [(r.name, r.url) for r in csb.git.remotes(repo).remotes] == [("origin", url)]
    assert csb.git.remote_get(repo, "origin") == url
    assert csb.git.remote_get(repo, "nope") is None
    csb.git.push(repo, set_upstream=True)
    assert csb.git.status(repo).upstream == "origin/main"

    csb.git.clone(url, f"{repo}-copy")
    assert sh(csb, "cat README.md", f"{repo}-copy") == "origin text\n"
    sh(csb, "echo later > later.txt", repo)
    csb.git.add(repo, ["later.txt"])
    later = csb.git.commit(repo, "later", *ADA)
    csb.git.push(repo)
    csb.git.pull(f"{repo}-copy")
    assert sh(csb, "cat later.txt", f"{repo}-copy") == "later\n"

    csb.git.create_branch(repo, "side")
    csb.git.push(repo, branch="side", remote="origin")
    csb.git.clone(url, f"{repo}-side", branch="side")
    assert csb.git.branches(f"{repo}-side").current == "side"
    first = csb.git.history(repo)[-1].hash
    csb.git.clone(url, f"{repo}-old", commit_id=first)
    old = csb.git.status(f"{repo}-old")
    assert old.detached is True
    assert csb.process.exec("test -e later.txt", cwd=f"{repo}-old").exit_code == 1
    assert csb.git.history(f"{repo}-old")[0].hash == first != later.hash


def test_config_and_configure_user(csb: Sandbox) -> None:
    repo = new_repo(csb)
    csb.git.set_config("sdk.flavour", "plain")
    assert csb.git.get_config("sdk.flavour") == "plain"
    assert csb.git.get_config("sdk.unset-key") is None
    csb.git.configure_user("Local One", "one@example.com", scope="local", path=repo)
    assert sh(csb, "git config --local user.name", repo).strip() == "Local One"
    assert csb.git.get_config("user.email", scope="local", path=repo) == "one@example.com"
    with pytest.raises(BadRequest) as bad:
        csb.git.set_config("a.b", "c", scope="local")
    assert "path" in bad.value.message


def test_missing_repository_and_bad_timeout(csb: Sandbox) -> None:
    with pytest.raises(NotFound) as missing:
        csb.git.status("no/such/repo")
    assert "no/such/repo" in missing.value.message
    with pytest.raises(BadRequest) as bad:
        csb.git.status(".", request_timeout=-1)
    assert "request_timeout" in bad.value.message


@pytest.fixture(scope="module")
def http_remote(csb: Sandbox) -> str:
    """A bare repository served over smart HTTP (basic auth) inside the sandbox."""
    repo = new_repo(csb, "over http\n")
    csb.git.init("sdk-served/origin.git", bare=True, initial_branch="main")
    csb.git.remote_add(repo, "origin", f"file://{csb.get_work_dir()}/sdk-served/origin.git")
    csb.git.push(repo)
    script = Path(__file__).parent.parent / "e2e" / "git_http_server.py"
    encoded = base64.b64encode(script.read_bytes()).decode()
    r = csb.process.exec(
        f"echo {encoded} | base64 -d > /tmp/git_http_server.py && "
        f"python3 /tmp/git_http_server.py sdk-served {HTTP_PORT} </dev/null >/dev/null 2>&1",
        env={"GIT_HTTP_USER": "bot", "GIT_HTTP_PASSWORD": SECRET},
    )
    assert r.exit_code == 0, r.result
    return f"http://127.0.0.1:{HTTP_PORT}/origin.git"


def test_http_clone_push_pull_with_credentials(csb: Sandbox, http_remote: str) -> None:
    with pytest.raises(BadRequest) as refused:
        csb.git.clone(http_remote, "sdk-http-none")
    assert "Authentication failed" in refused.value.message or "Username" in refused.value.message

    csb.git.clone(http_remote, "sdk-http-a", username="bot", password=SECRET)
    assert sh(csb, "cat README.md", "sdk-http-a") == "over http\n"
    csb.git.clone(http_remote, "sdk-http-b", username="bot", password=SECRET)
    sh(csb, "echo pushed > p.txt", "sdk-http-a")
    csb.git.add("sdk-http-a", ["p.txt"])
    csb.git.commit("sdk-http-a", "p", *ADA)
    with pytest.raises(BadRequest):
        csb.git.push("sdk-http-a")  # no credentials: nothing remembered them
    csb.git.push("sdk-http-a", username="bot", password=SECRET)
    csb.git.pull("sdk-http-b", username="bot", password=SECRET)
    assert sh(csb, "cat p.txt", "sdk-http-b") == "pushed\n"
    assert csb.git.remote_get("sdk-http-a", "origin") == http_remote  # no user:pass in it
    assert SECRET not in sh(csb, "cat .git/config", "sdk-http-a")
    assert SECRET not in sh(csb, "cat .git/config", "sdk-http-b")


def test_env_and_port_helpers(csb: Sandbox) -> None:
    assert csb.get_user_home_dir() == sh(csb, "echo $HOME").strip()
    assert csb.get_work_dir() == sh(csb, "pwd").strip()
    csb.update_env({"SDK_NEW": "new value", "SDK_OLD": "old"})
    csb.update_env({"SDK_KEEP": "kept"}, unset=["SDK_OLD"])
    assert sh(csb, 'echo "$SDK_NEW|${SDK_OLD-unset}|$SDK_KEEP"') == "new value|unset|kept\n"
    assert HTTP_PORT + 1 not in csb.get_ports()
    assert csb.is_port_in_use(HTTP_PORT + 1) is False
    listen = (
        "python3 -c 'import os, socket; s = socket.socket(); "
        f's.bind(("0.0.0.0", {HTTP_PORT + 1})); s.listen(); '
        "os.fork() and os._exit(0); os.setsid(); s.accept()' </dev/null >/dev/null 2>&1"
    )
    sh(csb, listen)
    assert HTTP_PORT + 1 in csb.get_ports()
    assert csb.is_port_in_use(HTTP_PORT + 1) is True
    for bad in (0, 65536, -1):
        with pytest.raises(BadRequest) as refused:
            csb.is_port_in_use(bad)
        assert "port must be a number from 1 to 65535" in refused.value.message
    with pytest.raises(BadRequest) as bad_name:
        csb.update_env({"A=B": "1"})
    assert "A=B" in bad_name.value.message


def test_async_face_every_call(server: ServerProcess, csb: Sandbox, http_remote: str) -> None:
    async def main() -> None:
        async with AsyncCove(api_url=server.api_url, api_key=server.key) as cove:
            sb = await cove.get(csb.id)
            git = sb.git
            repo = "sdk-async"
            await git.init(repo, initial_branch="sdk-async")
            sh(csb, "echo async > a.txt", repo)
            await git.add(repo, ["a.txt"])
            status = await git.status(repo)
            assert [(f.name, f.staging) for f in status.file_status] == [("a.txt", "Added")]
            made = await git.commit(repo, "async first", *ADA)
            assert (await git.history(repo))[0].hash == made.hash
            await git.create_branch(repo, "topic")
            assert (await git.branches(repo)).current == "topic"
            await git.checkout_branch(repo, "sdk-async")
            await git.delete_branch(repo, "topic")
            assert (await git.branches(repo)).branches == ["sdk-async"]
            sh(csb, "echo scribble > a.txt", repo)
            await git.restore(repo, ["a.txt"])
            await git.commit(repo, "empty", *ADA, allow_empty=True)
            await git.reset(repo, mode="hard", target="HEAD~1")
            assert (await git.history(repo))[0].hash == made.hash

            await git.remote_add(repo, "web", http_remote)
            assert await git.remote_get(repo, "web") == http_remote
            assert [r.name for r in (await git.remotes(repo)).remotes] == ["web"]
            await git.push(repo, "bot", SECRET, branch="sdk-async", remote="web")
            await git.clone(
                http_remote, "sdk-async-copy", "sdk-async", username="bot", password=SECRET
            )
            assert sh(csb, "cat a.txt", "sdk-async-copy") == "async\n"
            sh(csb, "echo more > b.txt", repo)
            await git.add(repo, ["b.txt"])
            await git.commit(repo, "more", *ADA)
            await git.push(repo, "bot", SECRET, branch="sdk-async", remote="web")
            await git.pull("sdk-async-copy", "bot", SECRET)
            assert sh(csb, "cat b.txt", "sdk-async-copy") == "more\n"

            await git.configure_user("Async", "async@example.com", scope="local", path=repo)
            assert await git.get_config("user.name", scope="local", path=repo) == "Async"
            await git.set_config("sdk.async", "yes")
            assert await git.get_config("sdk.async") == "yes"
            with pytest.raises(NotFound):
                await git.status("no/such/async-repo")

            await sb.update_env({"SDK_ASYNC": "a"})
            assert sh(csb, "echo $SDK_ASYNC") == "a\n"
            assert HTTP_PORT in await sb.get_ports()
            assert await sb.is_port_in_use(HTTP_PORT) is True
            assert await sb.get_work_dir() == csb.get_work_dir()
            assert await sb.get_user_home_dir() == csb.get_user_home_dir()

    asyncio.run(asyncio.wait_for(main(), 120))
