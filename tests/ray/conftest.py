"""A `cove serve --backend ray` on the session's 3-node loopback cluster."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.raycluster import RayCluster
from tests.serverproc import ServerProcess

PLACEMENT_TIMEOUT = 3.0


def ray_server_process(cluster: RayCluster, data_dir: Path) -> ServerProcess:
    env = {**cluster.env(), "COVE_RAY_PLACEMENT_TIMEOUT": str(PLACEMENT_TIMEOUT)}
    args = ["--backend", "ray", "--ray-address", cluster.address]
    return ServerProcess(data_dir, ["ray-key-a", "ray-key-b"], env=env, args=args)


@pytest.fixture(scope="session")
def ray_server(ray_cluster: RayCluster) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-ray-server-") as tmp:
        proc = ray_server_process(ray_cluster, Path(tmp) / "data").start(timeout=60)
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(autouse=True)
def _ray_server_alive(request: pytest.FixtureRequest) -> None:
    """The shared server is back up before a test that uses it: a fault test that
    kills it and then fails before its own restart must not fail every later test."""
    if "ray_server" in request.fixturenames:
        server: ServerProcess = request.getfixturevalue("ray_server")
        if server.proc is None or server.proc.poll() is not None:
            server.start(timeout=300)


@pytest.fixture(scope="session")
def ray_daytona(ray_server: ServerProcess) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=ray_server.key, api_url=ray_server.api_url))


@pytest.fixture
def ray_api(ray_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=ray_server.url,
        headers={"Authorization": f"Bearer {ray_server.key}"},
        timeout=120,
    ) as client:
        yield client
