"""Ephemeral and linked sandboxes through the unmodified official SDK (issue 22).

Ephemeral: deleted as soon as it stops. Linked: a follower names its owner
(same key, ephemeral, never a follower itself) and goes when the owner goes.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, DaytonaError

DEADLINE = 30.0


def wait_gone(api: httpx.Client, sandbox_id: str) -> None:
    """Until the server no longer knows the sandbox (an event we can only ask about)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if api.get(f"/api/sandbox/{sandbox_id}").status_code == 404:
            return
        time.sleep(0.1)
    pytest.fail(f"sandbox {sandbox_id} still exists after {DEADLINE} s")


def test_ephemeral_sandbox_is_deleted_when_it_stops(daytona: Any, api: httpx.Client) -> None:
    sb = daytona.create(CreateSandboxFromSnapshotParams(ephemeral=True))
    assert sb.auto_delete_interval == 0
    assert sb.process.exec("echo alive").result.strip() == "alive"
    daytona.stop(sb)
    wait_gone(api, sb.id)
    assert sb.id not in [s.id for s in daytona.list()]


def test_ephemeral_with_an_auto_delete_interval_is_refused(api: httpx.Client) -> None:
    r = api.post("/api/sandbox", json={"ephemeral": True, "autoDeleteInterval": 5})
    assert r.status_code == 400
    assert "ephemeral" in r.text and "autoDeleteInterval" in r.text


def test_follower_is_linked_and_goes_with_its_owner(daytona: Any, api: httpx.Client) -> None:
    owner = daytona.create()
    try:
        # By name as well as by id.
        f1 = daytona.create(
            CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True)
        )
        f2 = daytona.create(
            CreateSandboxFromSnapshotParams(linked_sandbox=owner.name, ephemeral=True)
        )
        for f in (f1, f2):
            assert f.state == "started"
            body = api.get(f"/api/sandbox/{f.id}").json()
            assert body["linkedSandboxId"] == owner.id
            assert body["autoDeleteInterval"] == 0
        assert api.get(f"/api/sandbox/{owner.id}").json().get("linkedSandboxId") is None
        daytona.delete(owner)
        for f in (f1, f2):
            assert api.get(f"/api/sandbox/{f.id}").status_code == 404
    finally:
        for s in daytona.list():
            if s.id == owner.id:
                daytona.delete(s)


def test_link_refusals(daytona: Any, other_daytona: Any, api: httpx.Client) -> None:
    owner = daytona.create()
    try:
        follower = daytona.create(
            CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True)
        )
        # A follower cannot be linked to.
        with pytest.raises(DaytonaError, match="cannot be linked to"):
            daytona.create(
                CreateSandboxFromSnapshotParams(linked_sandbox=follower.id, ephemeral=True)
            )
        # Followers must be ephemeral.
        with pytest.raises(DaytonaError, match="must be ephemeral"):
            daytona.create(CreateSandboxFromSnapshotParams(linked_sandbox=owner.id))
        # Another key's sandbox is not found.
        with pytest.raises(DaytonaError, match="not found") as err:
            other_daytona.create(
                CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True)
            )
        assert getattr(err.value, "status_code", 404) == 404
        r = api.post("/api/sandbox", json={"linkedSandbox": "no-such-sandbox", "ephemeral": True})
        assert r.status_code == 404 and "no-such-sandbox" in r.text
        # Nothing was left by the refused creates.
        names = [s.id for s in daytona.list()]
        assert sorted(i for i in names if i in (owner.id, follower.id)) == sorted(
            [owner.id, follower.id]
        )
    finally:
        daytona.delete(owner)
    assert api.get(f"/api/sandbox/{follower.id}").status_code == 404
