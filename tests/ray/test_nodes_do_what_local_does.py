"""What the local backend does, on Ray nodes: resize a running sandbox (Ray's
accounting follows), egress policies and link networks (the local network code
runs in each node's actor), followers placed on their owner's node, a warm
pool on the nodes, and a sandbox's disk bound; through the unmodified official
SDK and the API.

This module's own control plane on the session's cluster resolves names
through the tests' fake internet and keeps one pooled sandbox per node.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Resources, SessionExecuteRequest

from tests.cgroupfiles import HOST, limits
from tests.network.conftest import fetch, internet  # noqa: F401  (a fixture)
from tests.network.internet import FakeInternet
from tests.network.test_linked import PORT, serve_http
from tests.ray.conftest import ray_server_process
from tests.raycluster import RayCluster
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

GiB = 1 << 30


@pytest.fixture(scope="module")
def node_server(ray_cluster: RayCluster, internet: FakeInternet) -> Iterator[ServerProcess]:  # noqa: F811
    with tempfile.TemporaryDirectory(prefix="cove-ray-nodes-") as tmp:
        proc = ray_server_process(ray_cluster, Path(tmp) / "data")
        proc.env.update(COVE_NETWORK_DNS=internet.dns, COVE_RAY_WARM_POOL="1")
        proc.start(timeout=60)
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="module")
def dt(node_server: ServerProcess) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=node_server.key, api_url=node_server.api_url))


@pytest.fixture
def http(node_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=node_server.api_url,
        headers={"Authorization": f"Bearer {node_server.key}"},
        timeout=120,
    ) as client:
        yield client


def runner(http: httpx.Client, sid: str) -> str:
    return str(http.get(f"/sandbox/{sid}").json()["runnerId"])


def node_used(http: httpx.Client, node_id: str) -> dict[str, float]:
    (node,) = [n for n in http.get("/nodes").json() if n["id"] == node_id]
    return dict(node["used"])


def node_actor(ray_cluster: RayCluster, server: ServerProcess, node_id: str) -> Any:
    """The server's actor on `node_id`, through a driver of the test's own."""
    from cove.runtime.ray.cluster import connect

    ray = connect(ray_cluster.address)
    instance = hashlib.sha256(str(server.data_dir.resolve()).encode()).hexdigest()[:12]
    return ray.get_actor(f"cove-{instance}-node-{node_id}", namespace="cove")


@pytest.mark.skipif(HOST is None, reason="no cgroups on this host: limits are not enforced")
def test_a_running_sandbox_is_resized_on_its_node(dt: Any, http: httpx.Client) -> None:
    sb = dt.create()
    try:
        node = runner(http, sb.id)
        before = node_used(http, node)
        sb.process.create_session("keep")
        started = sb.process.execute_session_command(
            "keep", SessionExecuteRequest(command="exec sleep 600", run_async=True)
        )
        sb.resize(Resources(cpu=2, memory=2))
        assert (sb.cpu, sb.memory, sb.state) == (2, 2, "started")
        got = limits(sb.id)
        assert (got.cpus, got.memory_bytes) == (2.0, 2 * GiB)
        # Ray's accounting follows: one reservation of the new size, the old one gone.
        after = node_used(http, node)
        assert after["cpu"] == before["cpu"] + 1 and after["memory"] == before["memory"] + 1
        assert after["sandboxes"] == before["sandboxes"]
        assert sb.process.get_session_command("keep", started.cmd_id).exit_code is None

        # More than the node has free: 409 naming the node, and nothing changes. (Its
        # own capacity: test_cluster's joining node has more CPUs than the others.)
        (info,) = [n for n in http.get("/nodes").json() if n["id"] == node]
        r = http.post(f"/sandbox/{sb.id}/resize", json={"cpu": int(info["capacity"]["cpu"]) + 1})
        assert r.status_code == 409, r.text
        assert f"node {node[:12]} has no room" in r.json()["message"]
        assert limits(sb.id).cpus == 2.0 and node_used(http, node) == after

        sb.resize(Resources(cpu=1, memory=1))  # down again
        assert limits(sb.id).memory_bytes == 1 * GiB
        assert node_used(http, node) == before
    finally:
        dt.delete(sb)


def test_followers_run_on_their_owners_node_and_reach_it_by_name(
    dt: Any,
    http: httpx.Client,
    internet: FakeInternet,  # noqa: F811
) -> None:
    owner = dt.create(CreateSandboxFromSnapshotParams(name="ray-linked-owner"))
    stranger = dt.create()
    try:
        followers = [
            dt.create(CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True))
            for _ in range(3)
        ]
        home = runner(http, owner.id)
        assert {runner(http, f.id) for f in followers} == {home}
        serve_http(owner)
        for f in followers:
            assert fetch(f, f"http://{owner.name}:{PORT}/index.html") == "hello from the owner"
        # Only the link group resolves the owner.
        assert fetch(stranger, f"http://{owner.name}:{PORT}/").endswith("curl-failed:6")
    finally:
        dt.delete(owner)
        dt.delete(stranger)
    for f in followers:  # the owner's delete took them
        assert http.get(f"/sandbox/{f.id}").status_code == 404


def test_egress_policies_hold_on_nodes(dt: Any, internet: FakeInternet) -> None:  # noqa: F811
    url = f"http://{internet.addresses[0]}/hello"
    open_ = dt.create()
    blocked = dt.create(CreateSandboxFromSnapshotParams(network_block_all=True))
    try:
        assert open_.network_block_all is False
        assert "curl-failed" not in fetch(open_, url)
        assert "curl-failed" in fetch(blocked, url)
        # Changed while running: in force from the next connection.
        open_.update_network_settings(network_block_all=True)
        assert "curl-failed" in fetch(open_, url)
    finally:
        dt.delete(open_)
        dt.delete(blocked)


def test_nodes_keep_a_warm_pool(
    dt: Any, http: httpx.Client, ray_cluster: RayCluster, node_server: ServerProcess
) -> None:
    owner = dt.create()  # cold: it tells its node the shape to keep ready
    try:
        node = runner(http, owner.id)
        actor = node_actor(ray_cluster, node_server, node)
        import ray

        pooled = wait_for(lambda: ray.get(actor.pooled.remote()), 60, "a pooled sandbox")
        # A follower goes to the owner's node, where the pooled sandbox becomes it.
        follower = dt.create(
            CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True)
        )
        assert runner(http, follower.id) == node
        assert pooled[0] not in ray.get(actor.pooled.remote())
        assert follower.process.exec("echo $((20+22))").result.strip() == "42"
        # Pooled sandboxes hold no reservation: Ray counts the two sandboxes only.
        listed = http.get("/sandbox").json()["items"]
        assert node_used(http, node)["sandboxes"] == len(
            [s for s in listed if s["runnerId"] == node]
        )
    finally:
        dt.delete(owner)


def test_a_sandboxs_disk_bound_holds_on_its_node_across_stop_start(
    node_server: ServerProcess, http: httpx.Client
) -> None:
    # The node actor mounts the sandbox's own disk as local does (docs/disk-quota.md).
    made = http.post("/sandbox", json={"disk": 1})
    assert made.status_code == 200, made.text
    sid = made.json()["id"]
    execute = f"{node_server.url}/toolbox/{sid}/process/execute"
    run = {"command": "sh -c 'fallocate -l 2G big; echo rc=$?; df -k ~ | tail -1'"}
    try:
        for _ in range(2):
            r = http.post(execute, json=run)
            assert r.status_code == 200, r.text
            out = r.json()["result"]
            assert "No space left on device" in out and "rc=1" in out, out
            size_kib = int(out.strip().splitlines()[-1].split()[1])
            assert 0.8 * GiB < size_kib * 1024 <= GiB, out
            alive = http.post(execute, json={"command": "echo ok"})
            assert alive.json()["result"].strip() == "ok"
            assert http.post(f"/sandbox/{sid}/stop").status_code == 200
            assert http.post(f"/sandbox/{sid}/start").status_code == 200
    finally:
        http.delete(f"/sandbox/{sid}")
