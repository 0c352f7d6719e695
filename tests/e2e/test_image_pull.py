"""Images pulled from an OCI registry: a real docker-registry on loopback, a test image
pushed with umoci + skopeo, and the official SDK asking for it by reference."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.images.registry import loopback_registry, push_sharing_a_base, pushed_tiny_image
from tests.images.rootfs import tiny_rootfs
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def pushed() -> Iterator[str]:
    with pushed_tiny_image("tiny:1") as ref:
        yield ref


@pytest.fixture(scope="module")
def two_sharing_a_base() -> Iterator[tuple[str, str]]:
    """Two images on one base layer; the second deletes a base file in its own layer."""
    with tempfile.TemporaryDirectory(prefix="cove-registry-") as tmp:
        root = Path(tmp)
        with loopback_registry(root / "registry") as address:
            first, second = f"{address}/test/first:1", f"{address}/test/second:1"
            tree = tiny_rootfs(root / "tree")
            (tree / "etc/base-file").write_text("in the base\n")
            push_sharing_a_base(
                tree,
                root / "push",
                {
                    first: ({"etc/which": "first\n"}, []),
                    second: ({"etc/which": "second\n"}, ["etc/base-file"]),
                },
            )
            yield first, second


def _layers_of(server: ServerProcess, ref: str) -> list[str]:
    """The layer keys of the image pulled from `ref`, from the server's store on disk."""
    store = Path(os.environ.get("COVE_IMAGE_DIR") or server.data_dir / "images")
    images = [json.loads(p.read_text()) for p in (store / "images").glob("*.json")]
    matches = [i for i in images if i["source"] == ref]
    assert len(matches) == 1, (ref, [i["source"] for i in images])
    return list(matches[0]["layers"])


def test_pulled_images_keep_their_layers_and_share_the_base(
    daytona: Any, server: ServerProcess, two_sharing_a_base: tuple[str, str]
) -> None:
    from daytona import CreateSandboxFromImageParams

    first, second = two_sharing_a_base
    logs: list[str] = []
    a = daytona.create(CreateSandboxFromImageParams(image=first), timeout=300)
    b = daytona.create(
        CreateSandboxFromImageParams(image=second), timeout=300, on_snapshot_create_logs=logs.append
    )
    try:
        assert a.process.exec("cat /etc/which /etc/base-file").result == "first\nin the base\n"
        r = b.process.exec(
            "cat /etc/which; test -e /etc/base-file && echo still-there || echo gone"
        )
        assert r.result == "second\ngone\n", r.result  # the whiteout of its own layer
        assert any("shared, already in the store" in line for line in logs), logs
        la, lb = _layers_of(server, first), _layers_of(server, second)
        assert len(la) == len(lb) == 2
        assert la[0] == lb[0] and la[1] != lb[1]  # one base layer on disk for both
    finally:
        daytona.delete(a)
        daytona.delete(b)


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
