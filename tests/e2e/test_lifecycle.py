"""Sandbox lifecycle through the official SDK, and the errors it must raise."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest


def test_create_echoes_env_labels_and_resources(daytona: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    name = f"named-{uuid.uuid4().hex[:8]}"
    params = CreateSandboxFromSnapshotParams(
        name=name, env_vars={"FOO": "bar"}, labels={"team": "evals"}, language="javascript"
    )
    sb = daytona.create(params)
    try:
        assert sb.state == "started"
        assert sb.env == {"FOO": "bar"}
        assert sb.labels["team"] == "evals"
        assert sb.labels["code-toolbox-language"] == "javascript"
        assert (sb.cpu, sb.memory) == (1, 1)
        assert sb.process.exec("echo $FOO").result == "bar\n"
        assert daytona.get(name).id == sb.id
        assert daytona.get(sb.id).name == name
        listed = {s.id for s in daytona.list()}
        assert sb.id in listed
    finally:
        daytona.delete(sb)


def test_workspace_survives_stop_and_start(daytona: Any) -> None:
    sb = daytona.create()
    try:
        sb.process.exec("echo kept > note.txt")
        sb.stop()
        assert sb.state == "stopped"
        sb.start()
        assert sb.state == "started"
        assert sb.process.exec("cat note.txt").result == "kept\n"
    finally:
        daytona.delete(sb)


def test_deleted_sandbox_is_gone(daytona: Any) -> None:
    from daytona import DaytonaNotFoundError

    sb = daytona.create()
    sb_id = sb.id
    daytona.delete(sb)
    with pytest.raises(DaytonaNotFoundError):
        daytona.get(sb_id)


def test_unknown_sandbox_is_not_found(daytona: Any, api: httpx.Client) -> None:
    from daytona import DaytonaNotFoundError

    with pytest.raises(DaytonaNotFoundError):
        daytona.get("no-such-sandbox")
    r = api.post("/toolbox/no-such-sandbox/process/execute", json={"command": "true"})
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"


def test_toolbox_on_a_stopped_sandbox_says_so(daytona: Any, api: httpx.Client) -> None:
    sb = daytona.create()
    try:
        sb.stop()
        r = api.post(f"/toolbox/{sb.id}/process/execute", json={"command": "true"})
        assert r.status_code == 409
        assert "stopped" in r.json()["message"]
    finally:
        daytona.delete(sb)


def test_bad_create_requests_name_the_field(api: httpx.Client) -> None:
    for body, field in [
        ({"cpu": "two"}, "cpu"),
        ({"memory": 0}, "memory"),
        ({"labels": {"code-toolbox-language": "cobol"}}, "code-toolbox-language"),
        ({"env": ["A=1"]}, "env"),
    ]:
        r = api.post("/api/sandbox", json=body)
        assert r.status_code == 400, r.text
        assert field in r.json()["message"]


def test_duplicate_name_is_a_conflict(daytona: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams, DaytonaConflictError

    name = f"dup-{uuid.uuid4().hex[:8]}"
    sb = daytona.create(CreateSandboxFromSnapshotParams(name=name))
    try:
        with pytest.raises(DaytonaConflictError):
            daytona.create(CreateSandboxFromSnapshotParams(name=name))
    finally:
        daytona.delete(sb)


def test_keys_are_checked_and_sandboxes_are_per_key(
    server: Any, sandbox: Any, other_daytona: Any
) -> None:
    from daytona import DaytonaNotFoundError

    url = f"{server.url}/toolbox/{sandbox.id}/process/execute"
    assert httpx.post(url, json={"command": "true"}).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert httpx.post(url, json={"command": "true"}, headers=bad).status_code == 401
    assert httpx.get(f"{server.api_url}/sandbox", headers=bad).status_code == 401
    other = {"Authorization": f"Bearer {server.keys[1]}"}
    assert httpx.post(url, json={"command": "true"}, headers=other).status_code == 404
    with pytest.raises(DaytonaNotFoundError):
        other_daytona.get(sandbox.id)
    assert sandbox.id not in {s.id for s in other_daytona.list()}


def test_list_by_labels_returns_exactly_the_matches(
    daytona: Any, other_daytona: Any, server: Any
) -> None:
    from daytona import CreateSandboxFromSnapshotParams, ListSandboxesQuery

    from cove.sdk import Cove

    tag = uuid.uuid4().hex[:8]
    made = [
        daytona.create(CreateSandboxFromSnapshotParams(labels={"team": tag, "tier": t}))
        for t in ("gold", "silver")
    ]
    theirs = other_daytona.create(CreateSandboxFromSnapshotParams(labels={"team": tag}))
    try:
        gold, silver = made

        def ids(query: dict[str, str]) -> set[str]:
            return {s.id for s in daytona.list(ListSandboxesQuery(labels=query))}

        assert ids({"team": tag}) == {gold.id, silver.id}  # not the other tenant's
        assert ids({"team": tag, "tier": "gold"}) == {gold.id}
        assert ids({"team": tag, "tier": "bronze"}) == set()
        with Cove(api_url=server.api_url, api_key=server.key) as cove:
            assert [s.id for s in cove.list(labels={"tier": "silver", "team": tag})] == [silver.id]
    finally:
        for sb in made:
            daytona.delete(sb)
        other_daytona.delete(theirs)
