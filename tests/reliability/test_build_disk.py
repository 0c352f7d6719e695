"""Image build steps have a disk bound (issue 18): COVE_BUILD_DISK_GIB.

A server of its own with a 256 MiB bound and its own sandbox root, so that
every mount and loop device of its build sandboxes is found under one path.
A RUN that writes past the bound fails with ENOSPC inside its build sandbox,
the build fails naming the bound (in the log, the API's error and the
official SDK's), a sandbox already running carries on, and nothing of the
build stays mounted or attached. A RUN within it succeeds, and its layer
(copied off the step's disk) keeps what overlayfs records of deletions.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import wait_for
from tests.serverproc import COVE, ServerProcess

pytestmark = pytest.mark.timeout(900)  # the first build of a fresh machine makes its base
BOUND = "256 MiB (COVE_BUILD_DISK_GIB)"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-build-disk-") as tmp:
        root = Path(tmp) / "sandboxes"
        root.mkdir()
        Path(tmp).chmod(0o755)  # sandbox uids must traverse to their workspaces
        env = {
            "COVE_BUILD_DISK_GIB": "0.25",
            "COVE_WARM_POOL": "0",
            "COVE_SANDBOX_ROOT": str(root),
        }
        proc = ServerProcess(Path(tmp) / "data", ["build-disk"], env=env).start(60)
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=900) as client:
        yield client


def build(api: httpx.Client, dockerfile: str) -> list[dict[str, Any]]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with api.stream("POST", "/api/images/build", content=buf.getvalue()) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line) for line in r.iter_lines() if line]


def leftovers(root: Path) -> list[str]:
    """Mounts and loop devices of this server's build sandboxes (none of anyone else's)."""

    def of_a_build(line: str) -> bool:  # <root>/<instance>/build-<hex>/...
        return f"{root.resolve()}/" in line and "/build-" in line

    with open("/proc/mounts") as f:
        mounts = [line for line in f if of_a_build(line)]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    return mounts + [line for line in loops.stdout.splitlines() if of_a_build(line)]


def assert_no_leftovers(root: Path) -> None:
    """None of the build's mounts and loop devices stay. The kernel detaches an
    autoclear loop device in a workqueue after its last close, so a proof run saw
    one still listed, its file already deleted, right after the build ended."""
    left: list[str] = []

    def gone() -> bool:
        left[:] = leftovers(root)
        return not left

    try:
        wait_for(gone, 30, "the build's mounts and loop devices to go")
    except AssertionError:
        raise AssertionError(f"left after 30 s: {left}") from None


def sandbox_root(server: ServerProcess) -> Path:
    return Path(server.env["COVE_SANDBOX_ROOT"])


def test_a_step_within_the_bound_succeeds_and_its_layer_keeps_deletions(
    api: httpx.Client, server: ServerProcess
) -> None:
    dockerfile = (
        "FROM python:3.11-slim\n"
        # 160 MiB: more than half the bound, kept in the layer.
        "RUN head -c 167772160 /dev/zero > /opt/within && df -m / | tail -1\n"
        # A whiteout and an opaque directory, which the layer's copy must keep.
        "RUN rm /etc/debian_version && rm -rf /usr/share/doc && mkdir /usr/share/doc\n"
        'RUN test ! -e /etc/debian_version && test -z "$(ls -A /usr/share/doc)" '
        "&& test $(stat -c %s /opt/within) = 167772160 && echo layers-intact\n"
    )
    events = build(api, dockerfile)
    logs = "\n".join(e.get("log", "") for e in events)
    assert "image" in events[-1], events[-5:]
    assert "layers-intact" in logs, logs[-2000:]
    assert_no_leftovers(sandbox_root(server))


def test_a_step_past_the_bound_fails_naming_it(api: httpx.Client, server: ServerProcess) -> None:
    events = build(api, "FROM python:3.11-slim\nRUN head -c 419430400 /dev/zero > /opt/past\n")
    error = events[-1].get("error", {}).get("message", "")
    assert "line 2 (RUN) failed" in error and BOUND in error, events[-5:]
    logs = "\n".join(e.get("log", "") for e in events)
    assert "No space left on device" in logs, logs[-2000:]
    assert f"the step filled its disk: a build step may write at most {BOUND}" in logs
    assert_no_leftovers(sandbox_root(server))


def test_the_official_sdk_sees_the_bound_and_a_running_sandbox_carries_on(
    server: ServerProcess,
) -> None:
    from daytona import CreateSandboxFromImageParams, Daytona, DaytonaConfig, DaytonaError, Image

    daytona = Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))
    running = daytona.create()
    try:
        running.process.exec("echo before > ~/note")
        image = Image.base("python:3.11-slim").run_commands("fallocate -l 1G /opt/huge")
        with pytest.raises(DaytonaError) as err:
            daytona.create(CreateSandboxFromImageParams(image=image), timeout=900)
        assert BOUND in str(err.value), err.value
        r = running.process.exec("cat ~/note && echo after >> ~/note && cat ~/note")
        assert r.exit_code == 0 and r.result.split() == ["before", "before", "after"], r.result
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
        assert_no_leftovers(sandbox_root(server))
    finally:
        daytona.delete(running)


@pytest.mark.parametrize("value", ["0.01", "0", "-1"])
def test_a_bound_too_small_to_hold_a_filesystem_stops_the_server_naming_it(value: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cove-build-disk-bad-") as tmp:
        env = {**os.environ, "COVE_BUILD_DISK_GIB": value, "COVE_WARM_POOL": "0"}
        done = subprocess.run(
            [COVE, "serve", "--port", "0", "--data-dir", f"{tmp}/data"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done
        assert f"COVE_BUILD_DISK_GIB must be at least 0.0625 (64 MiB), got {value}" in done.stderr
