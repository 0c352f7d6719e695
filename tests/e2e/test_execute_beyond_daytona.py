"""What Cove's execute adds to Daytona's: separate streams, partial output on
timeout, output caps, whole-tree kills, and clear errors for bad input."""

from __future__ import annotations

import time
from typing import Any

import pytest


def test_stdout_and_stderr_are_kept_apart(api: Any, sandbox: Any) -> None:
    r = api.post(
        f"/toolbox/{sandbox.id}/process/execute",
        json={"command": "echo out; echo err >&2; echo out2; exit 4"},
    )
    body = r.json()
    assert r.status_code == 200
    assert body["exitCode"] == 4
    assert body["stdout"] == "out\nout2\n"
    assert body["stderr"] == "err\n"
    assert sorted(body["result"].splitlines()) == ["err", "out", "out2"]
    assert body["timedOut"] is False and body["truncated"] is False


@pytest.mark.timeout(300)
def test_timeout_keeps_partial_output_and_kills_the_tree(api: Any, sandbox: Any) -> None:
    marker = f"/tmp/tree-{time.monotonic_ns()}"
    r = api.post(
        f"/toolbox/{sandbox.id}/process/execute",
        json={
            # A grandchild in its own session must die with the command too.
            "command": f"echo partial; setsid sh -c 'sleep 2; touch {marker}' & sleep 30",
            "timeout": 1,
        },
    )
    assert r.status_code == 408
    body = r.json()
    assert body["code"] == "PROCESS_EXECUTION_TIMEOUT"
    assert body["timedOut"] is True
    assert body["stdout"] == "partial\n"
    survivors = api.post(
        f"/toolbox/{sandbox.id}/process/execute",
        json={
            "command": f"sleep 2.5; ps -eo args | grep -c '[s]leep 2$'; test -e {marker}; echo $?"
        },
    ).json()["stdout"]
    assert survivors == "0\n1\n"


def test_output_is_capped_with_a_flag(api: Any, sandbox: Any) -> None:
    r = api.post(
        f"/toolbox/{sandbox.id}/process/execute",
        json={"command": "head -c 5000000 /dev/zero | tr '\\0' x", "maxOutputBytes": 1000},
    )
    body = r.json()
    assert r.status_code == 200
    assert body["truncated"] is True
    assert len(body["stdout"]) == 1000
    assert body["exitCode"] == 0


def test_invalid_utf8_output_is_replaced_not_an_error(api: Any, sandbox: Any) -> None:
    r = api.post(f"/toolbox/{sandbox.id}/process/execute", json={"command": "printf 'a\\377b'"})
    assert r.status_code == 200
    assert r.json()["stdout"] == "a\ufffdb"


def test_invalid_bodies_get_a_400_naming_the_field(api: Any, sandbox: Any) -> None:
    url = f"/toolbox/{sandbox.id}/process/execute"
    cases = [
        ({"command": 5}, "command"),
        ({}, "command"),
        ({"command": "true", "timeout": "soon"}, "timeout"),
        ({"command": "true", "envs": {"A": 1}}, "envs.A"),
        ({"command": "true", "timeout": -1}, "timeout"),
    ]
    for body, field in cases:
        r = api.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["message"], r.text
    r = api.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in r.json()["message"]


def test_unknown_language_is_a_400(api: Any, sandbox: Any) -> None:
    r = api.post(f"/toolbox/{sandbox.id}/process/code-run", json={"code": "x", "language": "cobol"})
    assert r.status_code == 400
    assert "language" in r.json()["message"]
