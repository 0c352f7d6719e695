"""Images, builds and snapshots on the ray backend, through the unmodified official SDK.

The image is the cheapest the image tests use: a tiny root filesystem (a shell
and some coreutils) pushed to a real docker-registry on loopback. The control
plane pulls it into its own store; each node runs sandboxes on its own copy
of the layers (shipped over the node's relay), which these tests find in
that node's cache and in the sandbox's overlay mount, never the control
plane's store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.runtime.base import instance_of
from tests.images.registry import pushed_tiny_image
from tests.raycluster import RayCluster
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pushed() -> Iterator[str]:
    with pushed_tiny_image("tiny-ray:1") as ref:
        yield ref


def cp_image(server: ServerProcess, source: str) -> dict[str, Any]:
    """The control plane's record of the image made from `source`."""
    store = server.data_dir / "images"
    images = [json.loads(p.read_text()) for p in (store / "images").glob("*.json")]
    matches = [i for i in images if i["source"] == source]
    assert len(matches) == 1, (source, [i["source"] for i in images])
    return matches[0]


def node_cache(cluster: RayCluster, server: ServerProcess, node_id: str) -> Path:
    """The node's own image cache for `server`'s control plane (COVE_RAY_NODE_DIR/<instance>/<node>:
    the instance is named from the control plane's data dir, and in a whole run other
    control planes use the same session cluster)."""
    cache = cluster.node_dir / instance_of(server.data_dir) / node_id[:16] / "images"
    assert cache.is_dir(), (cache, list(cluster.node_dir.glob(f"*/{node_id[:16]}/images")))
    return cache


def node_of(api: httpx.Client, sid: str) -> str:
    return str(api.get(f"/api/sandbox/{sid}").json()["runnerId"])


def overlay_lowerdirs(sid: str) -> list[str]:
    """The layer directories the sandbox's root is mounted from (this host's mount table)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4].endswith(f"/{sid}/rootfs") and " - overlay " in line:
            options = line.split(" - overlay ", 1)[1].split(" ", 1)[1]
            for opt in options.split(","):
                if opt.startswith("lowerdir="):
                    return opt.removeprefix("lowerdir=").split(":")
    raise AssertionError(f"no overlay root mounted for {sid}")


def test_a_pulled_image_runs_from_the_nodes_own_copy(
    ray_daytona: Any, ray_server: ServerProcess, ray_cluster: RayCluster, ray_api: httpx.Client,
    pushed: str,
) -> None:  # fmt: skip
    from daytona import CreateSandboxFromImageParams

    logs: list[str] = []
    sb = ray_daytona.create(
        CreateSandboxFromImageParams(image=pushed), timeout=240, on_snapshot_create_logs=logs.append
    )
    try:
        r = sb.process.exec("cat /etc/pulled; echo $PULLED; echo x > /etc/pulled")
        assert r.result.startswith("from the registry\nyes\n"), r.result
        # Image files are read-only to the sandbox, as on local.
        assert "cannot create /etc/pulled: Permission denied" in r.result, r.result
        assert any(f"pulling {pushed}" in line for line in logs), logs
        layers = cp_image(ray_server, pushed)["layers"]
        cache = node_cache(ray_cluster, ray_server, node_of(ray_api, sb.id))
        for key in layers:  # every layer arrived in the node's own cache...
            assert (cache / "layers" / key).is_dir(), key
        assert (cache / "layers" / layers[-1] / "etc/pulled").read_text() == "from the registry\n"
        # ...and the sandbox's root is mounted from there, not from the control plane's store.
        lower = overlay_lowerdirs(sb.id)
        assert any(d.startswith(str(cache / "layers")) for d in lower), lower
        assert not any(str(ray_server.data_dir) in d for d in lower), lower
    finally:
        ray_daytona.delete(sb)


def test_an_image_built_on_a_node(
    ray_daytona: Any, ray_server: ServerProcess, ray_api: httpx.Client, pushed: str
) -> None:
    from daytona import CreateSandboxFromImageParams, Image

    image = (
        Image.base(pushed)
        .run_commands("echo built-on-a-node > /etc/built && cat /etc/pulled")
        .env({"BUILT": "yes"})
    )
    logs: list[str] = []
    sb = ray_daytona.create(
        CreateSandboxFromImageParams(image=image), timeout=240, on_snapshot_create_logs=logs.append
    )
    try:
        text = "\n".join(logs)
        assert "RUN echo built-on-a-node > /etc/built && cat /etc/pulled" in text, text
        assert "  from the registry" in text, text  # the step's output, streamed from the node
        assert " ---> layer " in text, text
        r = sb.process.exec("cat /etc/built /etc/pulled; echo $BUILT")
        assert r.result == "built-on-a-node\nfrom the registry\nyes\n", r.result
        # The step's layer came back to the control plane's store.
        log = ray_api.get(f"/api/sandbox/{sb.id}/build-logs").text
        key = log.split(" ---> layer ")[1].split()[0]
        built = [p for p in (ray_server.data_dir / "images/layers").glob(f"{key}*") if p.is_dir()]
        assert len(built) == 1 and (built[0] / "etc/built").read_text() == "built-on-a-node\n"
    finally:
        ray_daytona.delete(sb)


def test_a_failing_build_step_on_a_node(
    ray_daytona: Any, ray_api: httpx.Client, pushed: str
) -> None:
    from daytona import CreateSandboxFromImageParams, DaytonaError, Image

    image = Image.base(pushed).run_commands("echo about-to-fail; exit 7")
    logs: list[str] = []
    try:
        with pytest.raises(DaytonaError) as err:
            ray_daytona.create(
                CreateSandboxFromImageParams(image=image),
                timeout=240,
                on_snapshot_create_logs=logs.append,
            )
        assert "exit status 7" in str(err.value), err.value
    finally:
        # The SDK leaves a build_failed sandbox for its owner to delete; later
        # modules on this server count what is listed.
        for item in ray_api.get("/api/sandbox").json()["items"]:
            if item["state"] == "build_failed":
                ray_api.delete(f"/api/sandbox/{item['id']}")


def test_snapshots_on_ray(ray_daytona: Any, ray_server: ServerProcess, pushed: str) -> None:
    """`daytona.snapshot.create` built on a node; `sandbox.create_snapshot` brought back
    from the sandbox's node; a sandbox on each (on whichever node Ray picks)."""
    from daytona import CreateSandboxFromSnapshotParams, CreateSnapshotParams, Image

    image = Image.base(pushed).run_commands(
        "echo made-by-snapshot > /etc/from-snapshot", "mkdir -p -m 1777 /var/tmp"
    )
    logs: list[str] = []
    snap = ray_daytona.snapshot.create(
        CreateSnapshotParams(name="ray-snap:1", image=image), on_logs=logs.append
    )
    try:
        assert snap.state == "active"
        assert any("RUN echo made-by-snapshot" in line for line in logs), logs
        first = ray_daytona.create(CreateSandboxFromSnapshotParams(snapshot="ray-snap:1"))
        try:
            first.process.exec("echo in-workspace > ~/work.txt; echo in-root > /var/tmp/root.txt")
            first.create_snapshot("ray-snap-captured")
        finally:
            ray_daytona.delete(first)
        second = ray_daytona.create(CreateSandboxFromSnapshotParams(snapshot="ray-snap-captured"))
        try:
            r = second.process.exec("cat ~/work.txt /var/tmp/root.txt /etc/from-snapshot")
            assert r.result.split() == ["in-workspace", "in-root", "made-by-snapshot"], r.result
        finally:
            ray_daytona.delete(second)
            ray_daytona.snapshot.delete("ray-snap-captured")
    finally:
        ray_daytona.snapshot.delete(snap)
