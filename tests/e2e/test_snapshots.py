"""The official SDK's snapshots API and `sandbox.create_snapshot`, end to end.

Snapshots are built on the Debian bookworm base (`python:3.11-slim`), which
the test session shares with test_image_build (cached across sessions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(900)  # the first image of a fresh machine builds its base


@pytest.fixture(scope="module")
def snapshot(daytona: Any) -> Iterator[tuple[Any, list[str]]]:
    from daytona import CreateSnapshotParams, Image

    image = (
        Image.base("python:3.11-slim")
        .run_commands("echo made-by-snapshot > /etc/from-snapshot")
        .env({"SNAP": "yes"})
    )
    logs: list[str] = []
    snap = daytona.snapshot.create(
        CreateSnapshotParams(name="snap-test:1", image=image), on_logs=logs.append
    )
    try:
        yield snap, logs
    finally:
        daytona.snapshot.delete(snap)


def test_create_streams_the_build_and_is_active(snapshot: tuple[Any, list[str]]) -> None:
    snap, logs = snapshot
    assert snap.name == "snap-test:1" and snap.state == "active"
    text = "\n".join(logs)
    assert "RUN echo made-by-snapshot > /etc/from-snapshot" in text, text


def test_list_get_activate(daytona: Any, snapshot: tuple[Any, list[str]]) -> None:
    snap, _ = snapshot
    assert snap.id in [s.id for s in daytona.snapshot.list().items]
    got = daytona.snapshot.get("snap-test:1")
    assert got.id == snap.id and got.size and got.size > 0
    assert daytona.snapshot.activate(snap).state == "active"


def test_a_sandbox_from_the_snapshot(daytona: Any, snapshot: tuple[Any, list[str]]) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot="snap-test:1"))
    try:
        r = sb.process.exec("cat /etc/from-snapshot; echo $SNAP")
        assert r.result.split() == ["made-by-snapshot", "yes"]
    finally:
        daytona.delete(sb)


def test_create_snapshot_of_a_running_sandbox(
    daytona: Any, snapshot: tuple[Any, list[str]]
) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    first = daytona.create(CreateSandboxFromSnapshotParams(snapshot="snap-test:1"))
    try:
        first.process.exec("echo in-workspace > ~/work.txt; echo in-root > /var/tmp/root.txt")
        first.create_snapshot("snap-captured")
        assert first.process.exec("cat ~/work.txt").result.strip() == "in-workspace"
    finally:
        daytona.delete(first)
    second = daytona.create(CreateSandboxFromSnapshotParams(snapshot="snap-captured"))
    try:
        r = second.process.exec("cat ~/work.txt /var/tmp/root.txt /etc/from-snapshot")
        assert r.result.split() == ["in-workspace", "in-root", "made-by-snapshot"], r.result
        # The workspace is the new sandbox's own: writable.
        r = second.process.exec("echo more >> ~/work.txt && cat ~/work.txt")
        assert r.result.split() == ["in-workspace", "more"]
        captured = daytona.snapshot.get("snap-captured")
        assert captured.source_sandbox_id == first.id
    finally:
        daytona.delete(second)
        daytona.snapshot.delete("snap-captured")


def test_a_failing_snapshot_build_and_a_deleted_snapshot(
    daytona: Any, server: ServerProcess
) -> None:
    from daytona import CreateSandboxFromSnapshotParams, CreateSnapshotParams, DaytonaError, Image

    with pytest.raises(DaytonaError) as err:
        daytona.snapshot.create(
            CreateSnapshotParams(
                name="snap-bad", image=Image.base("python:3.11-slim").run_commands("exit 7")
            )
        )
    assert "exit status 7" in str(err.value)
    log = server.data_dir / "build-logs" / f"snapshot-{daytona.snapshot.get('snap-bad').id}.log"
    assert "exit status 7" in log.read_text()
    daytona.snapshot.delete("snap-bad")
    assert not log.exists()  # the build log goes with its snapshot
    with pytest.raises(DaytonaError) as err:
        daytona.create(CreateSandboxFromSnapshotParams(snapshot="snap-bad"))
    assert "'snap-bad' does not exist" in str(err.value)


def test_create_snapshot_of_a_sandbox_on_the_default_root(daytona: Any) -> None:
    """Its writable state is its workspace: the snapshot carries that, on the default root."""
    from daytona import CreateSandboxFromSnapshotParams

    first = daytona.create()
    try:
        first.process.exec("mkdir -p ~/proj && echo from-default-root > ~/proj/notes.txt")
        first.create_snapshot("snap-default-root")
    finally:
        daytona.delete(first)
    captured = daytona.snapshot.get("snap-default-root")
    assert captured.state == "active" and captured.source_sandbox_id == first.id
    second = daytona.create(CreateSandboxFromSnapshotParams(snapshot="snap-default-root"))
    try:
        r = second.process.exec("cat ~/proj/notes.txt; stat -c %U ~/proj/notes.txt")
        assert r.result.split() == ["from-default-root", "user"], r.result
        # Still the default root (image roots have the host's /usr bound aside), and code_run.
        r = second.process.exec("test -e /opt/cove/host/usr && echo image-root || echo default")
        assert r.result.strip() == "default"
        assert second.process.code_run("print(6 * 7)").result.strip() == "42"
        r = second.process.exec("echo more >> ~/proj/notes.txt && cat ~/proj/notes.txt")
        assert r.result.split() == ["from-default-root", "more"]
    finally:
        daytona.delete(second)
        daytona.snapshot.delete("snap-default-root")
