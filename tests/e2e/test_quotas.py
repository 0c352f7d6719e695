"""Tenant quotas per API key (429) and admission control (503), on real servers.

One server runs with small COVE_QUOTA_* limits and a COVE_QUOTA_FILE that
gives the second key its own; two more run with admission floors no host
meets, so the refusal is the real reading of this host's memory and disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerProcess

KEYS = ["quota-a", "quota-b"]


def _serve(tmp: Path, env: dict[str, str]) -> ServerProcess:
    return ServerProcess(tmp / "data", list(KEYS), env={"COVE_WARM_POOL": "0", **env}).start(60)


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("quota")
    overrides = tmp / "quotas.json"
    digest = hashlib.sha256(KEYS[1].encode()).hexdigest()
    overrides.write_text(json.dumps({digest: {"sandboxes": 1}}))
    env = {
        "COVE_QUOTA_SANDBOXES": "3",
        "COVE_QUOTA_CPU": "3",
        "COVE_QUOTA_MEMORY_GIB": "3",
        "COVE_QUOTA_DISK_GIB": "7",
        "COVE_QUOTA_FILE": str(overrides),
    }
    proc = _serve(tmp, env)
    try:
        yield proc
    finally:
        proc.delete_all_sandboxes()
        proc.stop()


def _client(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def _sdk(server: ServerProcess, key: str) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=key, api_url=server.api_url))


def _refused(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(r.json()["message"])


def test_cpu_memory_disk_and_count_quotas_name_the_limit_and_the_use(
    quota_server: ServerProcess,
) -> None:
    from daytona import DaytonaRateLimitError

    with _client(quota_server, KEYS[0]) as c:
        a = c.post("/sandbox", json={"cpu": 2, "memory": 1, "disk": 3}).json()
        assert a["state"] == "started"
        msg = _refused(c.post("/sandbox", json={"cpu": 2, "disk": 1}), 429)
        assert "COVE_QUOTA_CPU allows 3 CPUs" in msg and "uses 2" in msg and "asks for 2" in msg
        msg = _refused(c.post("/sandbox", json={"memory": 3, "disk": 1}), 429)
        assert "COVE_QUOTA_MEMORY_GIB allows 3 GiB of memory" in msg and "uses 1" in msg

        # A stopped sandbox holds no CPU or memory; starting it again is checked.
        assert c.post(f"/sandbox/{a['id']}/stop").status_code == 200
        x = c.post("/sandbox", json={"cpu": 2, "disk": 3}).json()
        assert x["state"] == "started"
        msg = _refused(c.post(f"/sandbox/{a['id']}/start"), 429)
        assert "COVE_QUOTA_CPU" in msg and "uses 2" in msg

        # Disk counts every sandbox, stopped or not: 3 + 3 held, 2 more is past 7.
        msg = _refused(c.post("/sandbox", json={"disk": 2}), 429)
        assert "COVE_QUOTA_DISK_GIB allows 7 GiB of disk" in msg and "uses 6" in msg
        assert c.post("/sandbox", json={"disk": 1}).json()["state"] == "started"

        # The count, through the official SDK: its exception carries our message.
        with pytest.raises(DaytonaRateLimitError) as caught:
            _sdk(quota_server, KEYS[0]).create(timeout=120)
        text = str(caught.value)
        assert "COVE_QUOTA_SANDBOXES allows 3 sandboxes" in text and "uses 3" in text

        # A resize past the quota is refused the same way.
        msg = _refused(c.post(f"/sandbox/{x['id']}/resize", json={"memory": 4}), 429)
        assert "COVE_QUOTA_MEMORY_GIB" in msg


def test_the_quota_file_overrides_one_key(quota_server: ServerProcess) -> None:
    from daytona import DaytonaRateLimitError

    daytona = _sdk(quota_server, KEYS[1])
    first = daytona.create(timeout=120)
    try:
        assert first.process.exec("echo ok").result.strip() == "ok"
        with pytest.raises(DaytonaRateLimitError) as caught:
            daytona.create(timeout=120)
        assert "COVE_QUOTA_SANDBOXES allows 1 sandboxes" in str(caught.value)
    finally:
        daytona.delete(first)
    # Deleting gives the room back.
    again = daytona.create(timeout=120)
    daytona.delete(again)


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"COVE_ADMIT_MIN_MEMORY_MIB": str(1 << 30)}, "the host is short of memory"),
        (
            {"COVE_ADMIT_MIN_MEMORY_MIB": "0", "COVE_ADMIT_MIN_DISK_GIB": str(1 << 20)},
            "the host is short of disk",
        ),
    ],
)
def test_admission_refuses_creates_when_the_host_is_short(
    tmp_path: Path, env: dict[str, str], reason: str
) -> None:
    proc = _serve(tmp_path, env)
    try:
        with _client(proc, KEYS[0]) as c:
            msg = _refused(c.post("/sandbox", json={}), 503)
            assert reason in msg and "COVE_ADMIT_MIN_" in msg
            assert c.get("/sandbox").json()["items"] == []  # nothing half-made
        from daytona import DaytonaError

        with pytest.raises(DaytonaError) as caught:
            _sdk(proc, KEYS[0]).create(timeout=60)
        assert reason in str(caught.value)
    finally:
        proc.delete_all_sandboxes()
        proc.stop()
