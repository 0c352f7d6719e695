"""A control plane restarted with other settings: the node actors it finds again take them.

The actors are detached and found by name, so Ray hands back the running
actor and drops the new constructor arguments: the settings reach it at its
`hello` instead. A node without sandboxes takes all of them (a new local
backend); a new warm pool size is taken even with sandboxes running.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ray.conftest import ray_server_process
from tests.raycluster import RayCluster
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess


def actors(cluster: RayCluster, server: ServerProcess) -> dict[str, Any]:
    from cove.runtime.ray.cluster import connect

    ray = connect(cluster.address)
    instance = hashlib.sha256(str(server.data_dir.resolve()).encode()).hexdigest()[:12]
    return {
        node.node_id: ray.get_actor(f"cove-{instance}-node-{node.node_id}", namespace="cove")
        for node in cluster.nodes
    }


@pytest.mark.timeout(600)
def test_a_restarted_control_plane_s_settings_reach_the_actors_it_finds(
    ray_cluster: RayCluster,
) -> None:
    from daytona import Daytona, DaytonaConfig

    import ray

    with tempfile.TemporaryDirectory(prefix="cove-ray-restart-") as tmp:
        server = ray_server_process(ray_cluster, Path(tmp) / "data")
        server.env.update(COVE_NETWORK="off", COVE_RAY_WARM_POOL="0")
        server.start(timeout=120)
        try:
            first = {
                n: ray.get(a.settings.remote()) for n, a in actors(ray_cluster, server).items()
            }
            assert {s.options.network for s in first.values()} == {"off"}
            server.stop()
            server.env.update(COVE_NETWORK="auto", COVE_RAY_WARM_POOL="1")
            server.start(timeout=300)
            found = actors(ray_cluster, server)
            for node_id, actor in found.items():
                now = ray.get(actor.settings.remote())
                assert (now.options.network, now.options.warm_pool) == ("auto", 1), node_id
            # The new pool size is in force: a create leaves a pooled sandbox on its node.
            dt = Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))
            sb = dt.create()
            try:
                with httpx.Client(headers={"Authorization": f"Bearer {server.key}"}) as http:
                    node = http.get(f"{server.api_url}/sandbox/{sb.id}").json()["runnerId"]
                wait_for(lambda: ray.get(found[node].pooled.remote()), 120, "a pooled sandbox")
            finally:
                dt.delete(sb)
        finally:
            server.delete_all_sandboxes()
            server.stop()
