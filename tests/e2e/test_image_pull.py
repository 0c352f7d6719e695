"""Images pulled from an OCI registry: a real docker-registry on loopback, a test image
pushed with umoci + skopeo, and the official SDK asking for it by reference."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.images.registry import loopback_registry, push_tree
from tests.images.rootfs import tiny_rootfs


@pytest.fixture(scope="module")
def pushed() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="cove-registry-") as tmp:
        root = Path(tmp)
        with loopback_registry(root / "registry") as address:
            ref = f"{address}/test/tiny:1"
            tree = tiny_rootfs(root / "tree")
            (tree / "etc/pulled").write_text("from the registry\n")
            push_tree(tree, root / "push", ref, {"PULLED": "yes", "PATH": "/usr/bin:/bin"}, ["sh"])
            yield ref


def test_a_sandbox_on_a_pulled_image(daytona: Any, pushed: str) -> None:
    from daytona import CreateSandboxFromImageParams

    logs: list[str] = []
    sb = daytona.create(
        CreateSandboxFromImageParams(image=pushed), timeout=300, on_snapshot_create_logs=logs.append
    )
    try:
        r = sb.process.exec("cat /etc/pulled; echo $PULLED; ls /usr/bin/python3")
        assert r.result.startswith("from the registry\nyes\n"), r.result
        assert "No such file" in r.result
        assert any(f"pulling {pushed}" in line for line in logs), logs
    finally:
        daytona.delete(sb)
    # The same digest again: no fetch, no unpack.
    logs.clear()
    sb = daytona.create(
        CreateSandboxFromImageParams(image=pushed), timeout=300, on_snapshot_create_logs=logs.append
    )
    try:
        assert sb.process.exec("cat /etc/pulled").result == "from the registry\n"
    finally:
        daytona.delete(sb)


def test_an_unreachable_registry_is_a_clear_error(daytona: Any) -> None:
    from daytona import CreateSandboxFromImageParams, DaytonaError

    with pytest.raises(DaytonaError) as err:
        daytona.create(CreateSandboxFromImageParams(image="127.0.0.1:9/none/such:1"), timeout=120)
    message = str(err.value)
    assert "'127.0.0.1:9/none/such:1' cannot be had" in message, message
