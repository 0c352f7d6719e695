"""Git arguments that try to smuggle options or commands (issue 18, item 3).

An application may pass a URL, branch or config key it got from its own
users to `sandbox.git`: none of them may become an option of git or a
command run by a transport. Each attempt goes through the unmodified
official SDK, must fail with a 4xx naming the field or git's reason, and
must leave no marker file behind.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)  # sandboxes and servers start slowly under load


_marks = itertools.count()


def sh(sandbox: Any, command: str) -> str:
    r = sandbox.process.exec(command)
    assert r.exit_code == 0, r.result
    return str(r.result)


def marker() -> str:
    return f"/tmp/pwned-{next(_marks)}"


@pytest.fixture(scope="module")
def repo(sandbox: Any) -> str:
    sandbox.git.init("attacked", initial_branch="main")
    sh(sandbox, "cd attacked && echo x > f && git add f && git -c user.name=a -c user.email=a@b "
       "commit -qm one && git remote add origin file://$PWD")  # fmt: skip
    return "attacked"


def refused(call: Any, *words: str) -> str:
    from daytona import DaytonaError

    with pytest.raises(DaytonaError) as err:
        call()
    assert err.value.status_code in (400, 404), err.value
    text = str(err.value)
    assert any(w in text for w in words), text
    return text


def assert_no_markers(sandbox: Any) -> None:
    assert sh(sandbox, "ls /tmp | grep -c pwned || true").strip() == "0"


@pytest.mark.parametrize(
    "url, words",
    [
        ("--upload-pack=touch {m}", ("does not exist", "not a git repository")),
        ("-c core.sshCommand=touch {m}", ("does not exist", "not a git repository")),
        ("-uploadpack=touch {m}", ("does not exist", "not a git repository")),
        ("ext::sh -c touch% {m}", ("transport 'ext' not allowed",)),
        ("ssh://-oProxyCommand=touch% {m}/x", ("strange hostname",)),
        ("ssh://h/x -oProxyCommand=touch% {m}", ("Could not resolve", "fatal")),
    ],
)
def test_clone_urls_never_become_options_or_commands(
    sandbox: Any, url: str, words: tuple[str, ...]
) -> None:
    m = marker()
    refused(lambda: sandbox.git.clone(url.format(m=m), f"clone-{m[5:]}"), *words)
    assert_no_markers(sandbox)


def test_ext_transport_stays_off_even_when_user_config_allows_it(sandbox: Any) -> None:
    # User code may write its own ~/.gitconfig; a URL an application passes on
    # from its users must still not run a command.
    sh(sandbox, "git config --global protocol.allow always")
    try:
        m = marker()
        refused(
            lambda: sandbox.git.clone(f"ext::sh -c touch% {m}", "ext-allowed"),
            "transport 'ext' not allowed",
        )
        assert_no_markers(sandbox)
    finally:
        sh(sandbox, "git config --global --unset protocol.allow")


def test_names_starting_with_a_dash_are_refused(sandbox: Any, repo: str) -> None:
    m = marker()
    evil = f"--upload-pack=touch {m}"
    git = sandbox.git
    refused(lambda: git.clone(f"file:///nowhere-{m[5:]}", "c", branch=evil), "branch")
    refused(lambda: git.pull(repo, remote=evil), "remote")
    refused(lambda: git.pull(repo, branch=evil), "branch")
    refused(lambda: git.push(repo, remote=evil), "remote")
    refused(lambda: git.push(repo, branch="--mirror"), "branch")
    refused(lambda: git.checkout_branch(repo, "--orphan=x"), "branch")
    refused(lambda: git.create_branch(repo, "-f"), "name")
    refused(lambda: git.delete_branch(repo, "--all"), "name")
    refused(lambda: git.remote_add(repo, evil, "file:///x"), "name")
    refused(lambda: git.restore(repo, ["f"], source="--worktree"), "source")
    assert_no_markers(sandbox)


def test_remote_url_with_ext_is_refused_at_fetch_and_push(sandbox: Any, repo: str) -> None:
    m = marker()
    sandbox.git.remote_add(repo, "evil", f"ext::sh -c touch% {m}", overwrite=True)
    refused(lambda: sandbox.git.push(repo, remote="evil"), "transport 'ext' not allowed")
    refused(lambda: sandbox.git.pull(repo, remote="evil"), "transport 'ext' not allowed")
    assert_no_markers(sandbox)


@pytest.mark.parametrize("key", ["--edit", "--file=/etc/passwd", "-l", "--show-origin"])
def test_config_keys_are_keys_not_options(sandbox: Any, key: str) -> None:
    text = refused(lambda: sandbox.git.get_config(key), "key")
    assert "usage: git config" not in text  # a reason, not git's whole manual
    refused(lambda: sandbox.git.set_config(key, "x"), "key")
    assert sh(sandbox, "git config --global --list || true").count("--") == 0
