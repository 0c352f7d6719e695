"""`cove git clone`, run for real in a subprocess against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cove.cli.git import default_path
from cove.sdk import Cove, Sandbox
from tests.cli.test_cli import cove_cmd, env  # noqa: F401 (the module's env fixture)
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def sb(server: ServerProcess) -> Iterator[Sandbox]:
    with Cove(api_url=server.api_url, api_key=server.key) as client:
        yield client.create()


@pytest.fixture(scope="module")
def origin(sb: Sandbox) -> str:
    """A bare repository in the sandbox with `main` and a `side` branch; its file:// URL."""
    sb.git.init("src", initial_branch="main")
    assert sb.process.exec("echo from main > f.txt", cwd="src").exit_code == 0
    sb.git.add("src", ["f.txt"])
    sb.git.commit("src", "main", "Ada Lovelace", "ada@example.com")
    sb.git.create_branch("src", "side")
    assert sb.process.exec("echo from side > f.txt", cwd="src").exit_code == 0
    sb.git.add("src", ["f.txt"])
    sb.git.commit("src", "side", "Ada Lovelace", "ada@example.com")
    sb.git.init("origin.git", bare=True, initial_branch="main")
    url = f"file://{sb.get_work_dir()}/origin.git"
    sb.git.remote_add("src", "origin", url)
    sb.git.push("src", branch="main")
    sb.git.push("src", branch="side")
    return url


@pytest.mark.parametrize(
    ("url", "path"),
    [("https://h.example/a/b.git", "b"), ("git@h.example:team/tool.git", "tool"),
     ("file:///srv/repo/.git", "repo"), ("https://h.example/x/plain/", "plain")],
)  # fmt: skip
def test_default_path_is_gits(url: str, path: str) -> None:
    assert default_path(url) == path


def test_clone_default_path_and_a_branch(sb: Sandbox, origin: str, env: dict[str, str]) -> None:  # noqa: F811
    done = cove_cmd("git", "clone", sb.id, origin, env=env)
    assert done.returncode == 0, done.stderr
    assert f"into {sb.id}:origin (main at " in done.stdout
    assert sb.process.exec("cat origin/f.txt").result == "from main\n"
    done = cove_cmd("git", "clone", "--json", "-b", "side", sb.id, origin, "dst", env=env)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["path"] == "dst" and got["branch"] == "side"
    assert got["commit"] == sb.git.history("src")[0].hash
    assert sb.process.exec("cat dst/f.txt").result == "from side\n"


def test_a_failed_clone_says_why(sb: Sandbox, env: dict[str, str]) -> None:  # noqa: F811
    done = cove_cmd("git", "clone", sb.id, "file:///no/such/repo.git", env=env)
    assert done.returncode == 1
    assert "git clone failed" in done.stderr and "/no/such/repo.git" in done.stderr
