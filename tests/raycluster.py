"""A real Ray cluster of several nodes on this machine, bound to loopback, for tests.

Every node is a raylet of its own (`ray.cluster_utils.Cluster`), offering the
`cove` resource; the head is one of them. Ray's health check is shortened
as docs/scale-out.md asks operators to, so that a killed raylet is declared
dead in about 5 s (its port refuses at once, so each check fails fast).
A living raylet is declared dead only after missing five checks of 3 s
each: a shorter bound (it was 3 x 500 ms) killed live raylets of this
cluster when `make bench` ran its own cluster beside the tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GiB = 1 << 30
NODE_CPUS = 12
NODE_SLOTS = 12
HEALTH = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "3000",
    "RAY_health_check_failure_threshold": "5",
    # Ray rewrites 127.0.0.1 to this host's outward address unless told not to.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


@dataclass
class RayCluster:
    cluster: Any
    node_dir: Path
    nodes: list[Any] = field(default_factory=list)  # living
    lost: list[Any] = field(default_factory=list)  # raylets killed

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add_node(self, cpus: int = NODE_CPUS, slots: int = NODE_SLOTS) -> Any:
        node = self.cluster.add_node(
            num_cpus=cpus,
            memory=64 * GiB,
            resources={"cove": slots},
            node_ip_address="127.0.0.1",
        )
        self.cluster.wait_for_nodes()
        self.nodes.append(node)
        return node

    @staticmethod
    def node_id(node: Any) -> str:
        return str(node.node_id)

    def kill_raylet(self, node: Any) -> float:
        """SIGKILL the node's raylet, as a crashed or cut-off host would look to Ray;
        returns when (time.monotonic()). The node's other processes go too, as with a host."""
        raylet = node.all_processes["raylet"][0].process
        os.kill(raylet.pid, signal.SIGKILL)
        killed = time.monotonic()
        raylet.wait(10)
        # Cluster's own bookkeeping (wait_for_nodes counts the nodes it started).
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)
        self.lost.append(node)
        return killed

    def env(self) -> dict[str, str]:
        """What a `cove serve --backend ray` for this cluster needs."""
        return {
            **HEALTH,
            "COVE_RAY_ADDRESS": self.address,
            "COVE_RAY_NODE_DIR": str(self.node_dir),
        }


@contextmanager
def ray_cluster(size: int = 3) -> Iterator[RayCluster]:
    os.environ.update(HEALTH)
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory(prefix="cove-ray-") as tmp:
        Path(tmp).chmod(0o755)  # sandbox uids traverse to their workspaces
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": NODE_CPUS,
                "memory": 64 * GiB,
                "resources": {"cove": NODE_SLOTS},
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            },
        )
        rc = RayCluster(cluster, Path(tmp) / "nodes", [cluster.head_node])
        try:
            for _ in range(size - 1):
                rc.add_node()
            yield rc
        finally:
            cluster.shutdown()
            _remove_sandbox_leftovers(rc.node_dir)


def _remove_sandbox_leftovers(node_dir: Path) -> None:
    """Sandboxes of killed nodes outlive their actor: end them as `local` would."""
    from cove.runtime.local import LocalBackend

    for data_dir in node_dir.glob("*/*"):
        # network="auto": nodes run the local network code, so their sandboxes'
        # namespaces, rules and address claims are leftovers too (when root).
        be = LocalBackend(data_dir, network="auto")
        asyncio.run(be.cleanup_leftovers(set()))
        asyncio.run(be.close())
