"""Sandboxes on an image's root filesystem, through the official SDK's `snapshot`.

The image here is tiny (a shell and coreutils, no Python), put in the
server's image store directly: what is tested is the root, not how the
image was made. It has its own /etc, its files are read-only to the
sandbox, what the sandbox writes survives stop/start and never reaches
another sandbox on the same image, exec works without anything of the
agent's in the image, and code_run says the image has no Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cove.images.store import ImageConfig, ImageStore
from tests.images.rootfs import add_tree_image, tiny_rootfs
from tests.serverproc import ServerProcess

NAME = "tiny-test:1"


@pytest.fixture(scope="module")
def tiny_image(server: ServerProcess) -> str:
    store = ImageStore(server.data_dir / "images")
    tree = tiny_rootfs(store.scratch("tiny"))
    config = ImageConfig(env={"IMAGE_VAR": "from-image"})
    return add_tree_image(store, tree, NAME, config)


@pytest.fixture(scope="module")
def tiny(daytona: Any, tiny_image: str) -> Iterator[Any]:
    from daytona import CreateSandboxFromSnapshotParams

    sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot=NAME, env_vars={"MINE": "1"}))
    try:
        yield sb
    finally:
        daytona.delete(sb)


def test_exec_runs_on_the_image_root(tiny: Any) -> None:
    r = tiny.process.exec("cat /etc/os-release; echo $IMAGE_VAR $MINE; id -u; ls /usr/bin/python3")
    lines = r.result.split()
    assert lines[0] == "ID=tiny"
    assert lines[1:4] == ["from-image", "1", "1000"]
    assert "No such file" in r.result  # the host's /usr is not the root


def test_image_files_are_read_only_to_the_sandbox(tiny: Any) -> None:
    r = tiny.process.exec("touch /usr/bin/x 2>&1; echo rc=$?")
    assert "Permission denied" in r.result and "rc=1" in r.result


def test_code_run_says_the_image_has_no_python(tiny: Any) -> None:
    # The SDK's code_run lets the toolbox client's exception through: check the body.
    with pytest.raises(Exception) as err:
        tiny.process.code_run("print(1)")
    assert "image has none" in str(err.value) and "python3" in str(err.value)


def test_writes_survive_stop_start_and_stay_private(daytona: Any, tiny_image: str) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    a = daytona.create(CreateSandboxFromSnapshotParams(snapshot=NAME))
    b = daytona.create(CreateSandboxFromSnapshotParams(snapshot=NAME))
    try:
        r = a.process.exec("echo kept > /tmp/../var/tmp/mark 2>&1; cat /var/tmp/mark")
        assert r.result.strip() == "kept", r.result
        a.stop()
        a.start()
        assert a.process.exec("cat /var/tmp/mark").result.strip() == "kept"
        r = b.process.exec("cat /var/tmp/mark 2>&1; echo rc=$?")
        assert "No such file" in r.result and "rc=1" in r.result
    finally:
        daytona.delete(a)
        daytona.delete(b)


def test_unknown_snapshot_is_a_clear_404(daytona: Any, tiny_image: str) -> None:
    from daytona import CreateSandboxFromSnapshotParams, DaytonaError

    with pytest.raises(DaytonaError) as err:
        daytona.create(CreateSandboxFromSnapshotParams(snapshot="no-such:1"))
    assert "'no-such:1' does not exist" in str(err.value) and NAME in str(err.value)
