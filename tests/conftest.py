"""Shared fixtures: a real server on a free port, the official SDK, real sandboxes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerProcess, chosen_backend
from tests.timeouts import pytest_timeout_set_timer  # noqa: F401  (a hook: fail one test, not the run)

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ["DAYTONA_USE_DEPRECATED_POLLING"] = "false"
# A Ray cluster on loopback stays on loopback (tests/raycluster.py), even if ray is imported first.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Debian base images take a minute or two to build: test servers share them
# across sessions (they are keyed by content, so a stale one is never used).
os.environ.setdefault("COVE_IMAGE_BASE_CACHE", "/var/tmp/cove-test-image-bases")

KEYS = ["test-key-alice", "test-key-bob"]
RAY_SETUP_TIMEOUT = 300  # s: a 3-node cluster and its first actors, on a loaded host


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On the ray backend the first test also starts the session's cluster and server:
    its timeout covers that (a setup that overran would fail every test after it)."""
    if os.environ.get("COVE_TEST_BACKEND") == "ray" and items:
        items[0].add_marker(pytest.mark.timeout(RAY_SETUP_TIMEOUT), append=False)


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The suites' server; COVE_TEST_BACKEND=ray runs it on the session's Ray cluster."""
    env, args = chosen_backend(request)
    with tempfile.TemporaryDirectory(prefix="cove-test-") as tmp:
        proc = ServerProcess(Path(tmp) / "data", list(KEYS), env=env, args=args).start(60)
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()  # leave none behind, whatever the tests did
            proc.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One 3-node Ray cluster on loopback for the whole session (tests/raycluster.py)."""
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'cove[ray]'")
    from tests.raycluster import ray_cluster as make

    with make(3) as cluster:
        try:
            yield cluster
        finally:
            import ray

            ray.shutdown()  # this process's own driver, if a contract test connected it


@pytest.fixture(scope="session")
def tuned_server() -> Iterator[ServerProcess]:
    """A server configured only through the environment, each setting off its default:
    COVE_PORT, COVE_DATA_DIR, COVE_API_KEY, COVE_SANDBOX_ROOT, COVE_MAX_OUTPUT_BYTES,
    a warm pool of 2 and COVE_DISK_QUOTA=off (tests/e2e/test_server_settings.py,
    test_warm_pool.py)."""
    with tempfile.TemporaryDirectory(prefix="cove-tuned-") as tmp:
        root = Path(tmp) / "sandboxes"
        root.mkdir()
        Path(tmp).chmod(0o755)  # sandbox uids must traverse to their workspaces
        env = {
            "COVE_SANDBOX_ROOT": str(root),
            "COVE_MAX_OUTPUT_BYTES": "1000",
            "COVE_WARM_POOL": "2",
            "COVE_DISK_QUOTA": "off",
        }
        proc = ServerProcess(Path(tmp) / "data", ["tuned-a", "tuned-b"], env=env, via="env")
        proc.start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="session")
def daytona(server: ServerProcess) -> Any:
    """The official `daytona` SDK, unmodified, configured for the test server."""
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))


@pytest.fixture(scope="session")
def other_daytona(server: ServerProcess) -> Any:
    """The official SDK with the second tenant's key."""
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=server.keys[1], api_url=server.api_url))


@pytest.fixture(scope="module")
def sandbox(daytona: Any) -> Iterator[Any]:
    """One started sandbox shared by a test module (official SDK object)."""
    sb = daytona.create()
    try:
        yield sb
    finally:
        daytona.delete(sb)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """A raw HTTP client with the first key, for what the SDK does not expose."""
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    ) as client:
        yield client
