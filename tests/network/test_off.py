"""COVE_NETWORK=off (and any host where egress cannot be given): loopback only, said so."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def off_server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-net-off-") as tmp:
        env = {"COVE_NETWORK": "off", "COVE_WARM_POOL": "0"}
        proc = ServerProcess(Path(tmp) / "data", ["off-key"], env=env).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


def test_sandboxes_have_loopback_only_and_the_policy_says_why(off_server: ServerProcess) -> None:
    d = Daytona(DaytonaConfig(api_key=off_server.key, api_url=off_server.api_url))
    sb = d.create(CreateSandboxFromSnapshotParams(network_allow_list="198.18.0.0/15"))
    try:
        assert sb.network_block_all is True  # what is in force, whatever was asked
        links = sb.process.exec("ip -o link show | awk '{print $2}'").result.split()
        assert links == ["lo:"]
        headers = {"Authorization": f"Bearer {off_server.key}"}
        got = httpx.get(
            f"{off_server.api_url}/sandbox/{sb.id}/network-settings", headers=headers
        ).json()
        assert got["egress"] is False and got["networkBlockAll"] is True
        assert got["networkAllowList"] == ["198.18.0.0/15"]  # kept for a server that can
        assert "COVE_NETWORK=off" in got["note"]
    finally:
        d.delete(sb)
