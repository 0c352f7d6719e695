"""`cove labels`, `list --label`, `lifecycle`, `refresh-activity`, `resize`, `metrics`,
run for real against the session's server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.cli.test_cli import cove_cmd
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    return {**clean, "COVE_API_URL": server.api_url, "COVE_API_KEY": server.key}


@pytest.fixture(scope="module")
def sid(env: dict[str, str]) -> Iterator[str]:
    made = cove_cmd("create", "--json", env=env)
    assert made.returncode == 0, made.stderr
    sandbox_id = json.loads(made.stdout)["id"]
    yield sandbox_id
    cove_cmd("delete", sandbox_id, env=env)


@pytest.mark.parametrize(
    "command", ["labels", "lifecycle", "refresh-activity", "resize", "metrics"]
)
def test_help(command: str, env: dict[str, str]) -> None:
    done = cove_cmd(command, "--help", env=env)
    assert done.returncode == 0 and "usage: cove" in done.stdout


def test_labels_and_list_by_label(sid: str, env: dict[str, str]) -> None:
    done = cove_cmd("labels", sid, "stage=cli", "owner=me", env=env)
    assert done.returncode == 0, done.stderr
    assert "stage=cli" in done.stdout.splitlines()
    shown = json.loads(cove_cmd("labels", sid, "--json", env=env).stdout)
    assert shown["owner"] == "me"
    listed = json.loads(cove_cmd("list", "--label", "stage=cli", "--json", env=env).stdout)
    assert [s["id"] for s in listed] == [sid]
    none = json.loads(cove_cmd("list", "--label", "stage=other", "--json", env=env).stdout)
    assert none == []
    bad = cove_cmd("labels", sid, "novalue", env=env)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_lifecycle_refresh_resize_metrics(sid: str, env: dict[str, str]) -> None:
    done = cove_cmd("lifecycle", sid, "--autostop", "45", "--auto-delete", "-1", "--json", env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["autoStopInterval"], shown["autoDeleteInterval"]) == (45, -1)
    bad = cove_cmd("lifecycle", sid, "--ttl", "-3", env=env)
    assert bad.returncode == 1 and "positive" in bad.stderr
    assert cove_cmd("refresh-activity", sid, env=env).returncode == 0
    done = cove_cmd("resize", sid, "--cpu", "2", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cpu"] == 2
    done = cove_cmd("metrics", sid, "--json", env=env)
    assert done.returncode == 0, done.stderr
    (m,) = json.loads(done.stdout)
    assert m["cpuCount"] == 2 and m["memTotal"] == 1 << 30
    table = cove_cmd("metrics", sid, env=env)
    assert table.returncode == 0 and "CPU%" in table.stdout
