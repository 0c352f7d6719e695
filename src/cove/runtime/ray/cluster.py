"""The control plane's view of the Ray cluster: nodes, their actors, and reservations.

Everything that calls Ray's blocking client API lives here and runs in a
thread (`asyncio.to_thread`), so the control plane's event loop never waits
on the GCS. Names carry the control plane's instance id, so that several
control planes (or a test's backends) can share one Ray cluster without
touching each other's actors, placement groups or sandboxes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from cove.runtime.base import NodeUsage

log = logging.getLogger("cove.runtime.ray")

NAMESPACE = "cove"
RESOURCE = "cove"  # the custom resource a node offers: sandbox slots
GiB = 1 << 30


def connect(address: str) -> Any:
    """`ray.init` against an existing cluster at `address` (host:port); returns the module.

    A cluster bound to loopback (tests, one machine): Ray would rewrite
    127.0.0.1 to this host's outward address before connecting, so it is told
    that loopback is the node address, and the driver binds loopback too.
    """
    host = address.rsplit(":", 1)[0].strip("[]")
    loopback = host == "localhost" or _is_loopback(host)
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if loopback:  # read at import: ray may have been imported before us
        import ray._private.ray_constants as constants

        constants.ENABLE_RAY_CLUSTER = False

    if not ray.is_initialized():
        ray.init(
            address=address,
            namespace=NAMESPACE,
            _node_ip_address="127.0.0.1" if loopback else None,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    return ray


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Node:
    id: str
    ip: str
    alive: bool
    resources: dict[str, float]
    actor: Any = None
    relay: tuple[str, int] | None = None
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    attach_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Reservation:
    """A placement group of one bundle: the sandbox's CPU, memory and one `cove` slot."""

    name: str
    node: str
    cpu: float
    memory_bytes: float


class Cluster:
    def __init__(self, ray: Any, instance: str) -> None:
        self.ray = ray
        self.instance = instance
        self.nodes: dict[str, Node] = {}

    def pg_name(self, sid: str) -> str:
        return f"cove-{self.instance}-sb-{sid}"

    def actor_name(self, node_id: str) -> str:
        return f"cove-{self.instance}-node-{node_id}"

    # -- membership ------------------------------------------------------------

    async def refresh(self) -> list[Node]:
        """Read Ray's node table; return the nodes newly found dead."""
        table = await asyncio.to_thread(self.ray.nodes)
        died = []
        for row in table:
            resources = row.get("Resources") or {}
            if RESOURCE not in resources and row["NodeID"] not in self.nodes:
                continue  # offers no Cove capacity
            node = self.nodes.get(row["NodeID"])
            if node is None:
                node = self.nodes[row["NodeID"]] = Node(
                    row["NodeID"], row["NodeManagerAddress"], bool(row["Alive"]), resources
                )
            if node.alive and not row["Alive"]:
                died.append(node)
            node.alive = bool(row["Alive"]) and not node.lost.is_set()
            if row["Alive"]:
                node.resources = resources
        for node in died:
            self.mark_lost(node)
        return died

    def mark_lost(self, node: Node) -> None:
        if not node.lost.is_set():
            log.warning("ray node %s is lost; its sandboxes fail with 'node lost'", node.id)
        node.alive = False
        node.lost.set()
        node.actor = None
        node.relay = None

    def living(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive]

    # -- usage (Ray's accounting: our placement groups) --------------------------

    async def reservations(self, pending: bool = False) -> list[Reservation]:
        """Our placement groups Ray has placed (and, with `pending`, those still
        waiting or being re-placed; removed ones never)."""
        table = await asyncio.to_thread(self.ray.util.placement_group_table)
        prefix = f"cove-{self.instance}-sb-"
        states = {"CREATED", "PENDING", "PREPARED", "RESCHEDULING"} if pending else {"CREATED"}
        out = []
        for row in table.values():
            if not row.get("name", "").startswith(prefix) or row.get("state") not in states:
                continue
            bundle = row["bundles"][0]
            out.append(
                Reservation(
                    row["name"],
                    row["bundles_to_node_id"].get(0, ""),
                    float(bundle.get("CPU", 0)),
                    float(bundle.get("memory", 0)),
                )
            )
        return out

    async def usage(self) -> list[NodeUsage]:
        await self.refresh()
        reserved = await self.reservations()
        out = []
        for node in self.nodes.values():
            mine = [r for r in reserved if r.node == node.id]
            out.append(
                NodeUsage(
                    id=node.id,
                    alive=node.alive,
                    capacity={
                        "cpu": node.resources.get("CPU", 0.0),
                        "memory": round(node.resources.get("memory", 0.0) / GiB, 2),
                        "sandboxes": node.resources.get(RESOURCE, 0.0),
                    },
                    used={
                        "cpu": sum(r.cpu for r in mine),
                        "memory": round(sum(r.memory_bytes for r in mine) / GiB, 2),
                        "sandboxes": float(len(mine)),
                    },
                    sandboxes=len(mine),
                )
            )
        return out
