"""autoStopInterval and autoDeleteInterval (Daytona's create fields, in minutes).

The server runs here with a half-second "minute" (COVE_LIFECYCLE_MINUTE_SECONDS),
the same code on a shorter clock.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.helpers import sandbox_pids, wait_for
from tests.serverproc import ServerProcess

KEY = "hygiene-key"
MINUTE = 0.5


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with tempfile.TemporaryDirectory(prefix="cove-hygiene-") as tmp:
        server = ServerProcess(
            Path(tmp) / "data", [KEY], env={"COVE_LIFECYCLE_MINUTE_SECONDS": str(MINUTE)}
        ).start()
        headers = {"Authorization": f"Bearer {KEY}"}
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
                yield c
                for item in c.get("/api/sandbox").json()["items"]:
                    c.delete(f"/api/sandbox/{item['id']}")
        finally:
            server.stop()


def _state(c: httpx.Client, sid: str) -> str:
    r = c.get(f"/api/sandbox/{sid}")
    return "deleted" if r.status_code == 404 else str(r.json()["state"])


@pytest.mark.timeout(300)
def test_an_idle_sandbox_is_stopped_and_activity_keeps_it_running(client: httpx.Client) -> None:
    # Idle gaps between calls must stay under the interval even on a loaded
    # machine: 4 "minutes" (2 s here) against calls that take milliseconds.
    sid = client.post("/api/sandbox", json={"autoStopInterval": 4}).json()["id"]
    # Busy for longer than the interval...
    busy_until = time.monotonic() + 6 * MINUTE
    while time.monotonic() < busy_until:
        r = client.post(f"/toolbox/{sid}/process/execute", json={"command": "true"})
        assert r.status_code == 200
    assert _state(client, sid) == "started"
    # ...then idle: stopped, and its processes gone.
    wait_for(lambda: _state(client, sid) == "stopped", 30, "auto-stop")
    assert sandbox_pids(sid) == []


def test_auto_delete_zero_deletes_on_stop(client: httpx.Client) -> None:
    sid = client.post("/api/sandbox", json={"autoStopInterval": 1, "autoDeleteInterval": 0}).json()[
        "id"
    ]
    wait_for(lambda: _state(client, sid) == "deleted", 30, "auto-stop then delete")


def test_auto_delete_after_a_manual_stop(client: httpx.Client) -> None:
    sid = client.post("/api/sandbox", json={"autoDeleteInterval": 1}).json()["id"]
    assert client.post(f"/api/sandbox/{sid}/stop").json()["state"] == "stopped"
    wait_for(lambda: _state(client, sid) == "deleted", 30, "auto-delete")


def test_defaults_never_stop_or_delete(client: httpx.Client) -> None:
    keeper = client.post("/api/sandbox", json={}).json()
    assert (keeper["autoStopInterval"], keeper["autoDeleteInterval"]) == (0, -1)
    stopped = client.post("/api/sandbox", json={}).json()["id"]
    client.post(f"/api/sandbox/{stopped}/stop")
    # A control sandbox that does auto-stop and auto-delete: once it is gone,
    # the sweeper has passed over the other two several times.
    control = client.post(
        "/api/sandbox", json={"autoStopInterval": 1, "autoDeleteInterval": 1}
    ).json()["id"]
    wait_for(lambda: _state(client, control) == "deleted", 30, "the control to go")
    assert _state(client, keeper["id"]) == "started"
    assert _state(client, stopped) == "stopped"
