"""`RayBackend`: the runtime contract over the nodes of a Ray cluster.

A create asks Ray for a placement group of one bundle (the sandbox's CPU,
memory and one `cove` slot). It holds no process: it is only Ray's
accounting, so Ray picks the node, never over-commits one, and its
autoscaler sees the demand. Once Ray has placed it, the node's actor
(`node.NodeActor`, found or made by name) creates and runs the sandbox with
the local backend's code. A request that fits nowhere waits up to
`placement_timeout` seconds for room, then fails with `NoCapacity` (503)
naming what it needed and what each node has free.

A sandbox on an image runs on the node's own copy of it: its layers are
shipped from the control plane's image store over the node's relay before
the node creates it (`shipping`). Build steps run in build sandboxes on a
node, and their layers (like a sandbox's changes for `create_snapshot`)
come back the same way, so builds, snapshots and images work as on one host.

Failure: a monitor reads Ray's node table every second; a node Ray declares
dead has its sandboxes' `wait_exit` answer "node lost" (an actor call that
fails says the same), and their reservations are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from cove.images.step import Log, Step
from cove.images.store import ImageStore
from cove.runtime.base import (
    NodeUsage,
    ResourceUsage,
    RuntimeBackend,
    RuntimeHandle,
    SandboxSpec,
    instance_of,
)
from cove.runtime.endpoint import RelayEndpoint
from cove.runtime.ray.cluster import RESOURCE, Cluster, GiB, Node, connect
from cove.runtime.ray.node import NodeActor, NodeOptions, NodeSetup
from cove.runtime.ray.shipping import Shipping
from cove.wire.errors import (
    AgentUnavailable,
    BadRequest,
    Conflict,
    CoveError,
    NoCapacity,
    SandboxError,
)
from cove.wire.protocol.network import NetworkPolicy

log = logging.getLogger("cove.runtime.ray")

NODE_LOST = "node lost"
MONITOR_INTERVAL = 1.0
ACTOR_TIMEOUT = 60.0  # a node actor's first start: a worker process, then staging
PROBE_TIMEOUT = 10.0  # within the 10 s a dead node must be known in


def load_or_make_secret(data_dir: Path) -> bytes:
    """The cluster secret the relays check: kept in the data dir across restarts."""
    path = data_dir / "ray-secret"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


class RayBackend(RuntimeBackend):
    name = "ray"

    def __init__(
        self,
        address: str,
        data_dir: Path,
        *,
        secret: bytes | None = None,
        node_dir: str | None = None,
        runtime_dir: Path | None = None,
        placement_timeout: float = 30.0,
        relay_port: int = 0,
        node_options: NodeOptions | None = None,
        image_dir: Path | None = None,
    ) -> None:
        self.ray = connect(address)
        self.cluster = Cluster(self.ray, instance_of(Path(data_dir)))
        self.secret = secret or load_or_make_secret(Path(data_dir))
        self.node_dir = node_dir
        self.runtime_dir = str(runtime_dir) if runtime_dir else None
        self.placement_timeout = placement_timeout
        self.relay_port = relay_port
        self.node_options = node_options or NodeOptions()
        # Why sandboxes get no egress, as the nodes answer it (the settings' own
        # reason until a node has answered).
        self._network_note: str | None = (
            None if self.node_options.network == "auto" else "egress is off (COVE_NETWORK=off)"
        )
        self._exited: set[str] = set()  # sandboxes whose agent ended since their start
        self._monitor: asyncio.Task[None] | None = None
        self._actor_class = self.ray.remote(NodeActor)
        # The control plane's image store (builds, pulls, snapshots land here);
        # nodes get copies of its layers, never its path.
        self.images = ImageStore(image_dir or Path(data_dir) / "images")
        self.shipping = Shipping(self.images, self.secret, self._call)

    # -- nodes and their actors ---------------------------------------------------

    async def _node(self, node_id: str) -> Node:
        """A living node with its actor and relay; SandboxError if it is lost."""
        node = self.cluster.nodes.get(node_id)
        if node is None:
            await self.cluster.refresh()
            node = self.cluster.nodes.get(node_id)
        if node is None or not node.alive:
            raise SandboxError(NODE_LOST)
        if node.actor is None:
            async with node.attach_lock:
                if node.actor is None:
                    await self._attach(node)
        return node

    async def _attach(self, node: Node) -> None:
        """Find this node's actor by name, or start it there (pinned to the node)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = await asyncio.to_thread(
            lambda: self._actor_class.options(
                name=self.cluster.actor_name(node.id),
                namespace="cove",
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=10_000,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
            ).remote(
                self.cluster.instance,
                node.id,
                self.node_dir,
                self.runtime_dir,
                self.node_options,
            )
        )
        setup = NodeSetup(self.node_dir, self.runtime_dir, self.node_options)
        try:
            relay = await asyncio.wait_for(
                actor.hello.remote(self.secret, node.ip, self.relay_port, setup), ACTOR_TIMEOUT
            )
        except self.ray.exceptions.RayActorError:
            self.cluster.mark_lost(node)
            raise SandboxError(NODE_LOST) from None
        except TimeoutError:  # slow, not known dead: the next call tries again
            raise AgentUnavailable(
                f"ray node {node.id[:12]}: its Cove actor did not answer within {ACTOR_TIMEOUT:g}s"
            ) from None
        node.actor, node.relay = actor, (str(relay[0]), int(relay[1]))
        self._network_note = relay[2] and f"node {node.id[:12]}: {relay[2]}"
        if relay[3]:  # a restart with other settings found it running sandboxes
            log.warning("%s", relay[3])

    async def _call(self, node: Node, method: str, *args: Any) -> Any:
        """One actor call; the node's loss (actor gone, node declared dead) is `node lost`."""
        call = asyncio.ensure_future(getattr(node.actor, method).remote(*args))
        lost = asyncio.ensure_future(node.lost.wait())
        try:
            await asyncio.wait({call, lost}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (a stop took over a watcher): drop the call
            call.cancel()
            raise
        finally:
            lost.cancel()
        if not call.done():
            call.cancel()
            raise SandboxError(NODE_LOST)
        try:
            return call.result()
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.RayTaskError) as exc:
            raise self._unwrap(node, exc) from None

    def _unwrap(self, node: Node, exc: Exception) -> Exception:
        """What a failed actor call means: the node's loss, or the node's own answer."""
        if isinstance(exc, self.ray.exceptions.RayActorError):
            self.cluster.mark_lost(node)
            return SandboxError(NODE_LOST)
        # The node's own answer (e.g. an agent that failed to start): ours to raise
        # as it was, not Ray's wrapper of it.
        cause = getattr(exc, "cause", None)
        return cause if isinstance(cause, CoveError) else exc

    # -- placement ------------------------------------------------------------------

    async def _reserve(
        self, spec: SandboxSpec, *, on: str | None = None, name: str | None = None
    ) -> tuple[str, str]:
        """A placement group for `spec` (on node `on` if given, by its `ray.io/node-id`
        label); (its name, the node Ray put it on)."""
        from ray.util.placement_group import NODE_ID_LABEL_KEY, placement_group

        name = name or self.cluster.pg_name(spec.id)
        bundle = {"CPU": spec.cpus, "memory": float(spec.memory_bytes), RESOURCE: 1.0}
        pg = await asyncio.to_thread(
            placement_group,
            [bundle],
            strategy="STRICT_PACK",
            name=name,
            lifetime="detached",
            bundle_label_selector=[{NODE_ID_LABEL_KEY: on}] if on else None,
        )
        try:
            await asyncio.wait_for(pg.ready(), self.placement_timeout)
        except TimeoutError:
            await self._remove_pg(pg)
            raise NoCapacity(await self._shortfall(spec, on)) from None
        except asyncio.CancelledError:  # the create's caller went away: nothing held
            await asyncio.shield(self._remove_pg(pg))
            raise
        table = await asyncio.to_thread(self.ray.util.placement_group_table, pg)
        return name, table["bundles_to_node_id"][0]

    async def _remove_pg(self, pg: Any) -> None:
        from ray.util.placement_group import remove_placement_group

        await asyncio.to_thread(remove_placement_group, pg)

    async def _owner_node(self, spec: SandboxSpec) -> str | None:
        """A follower's place: its owner's node (a link group's network lives on one node)."""
        if not spec.link_group or spec.link_group == spec.id:
            return None
        owner = await self._node_of(spec.link_group)
        if owner is None:
            raise SandboxError(f"the linked sandbox {spec.link_group} holds no node ({NODE_LOST}?)")
        return owner

    async def _node_of(self, sid: str) -> str | None:
        """The node holding `sid`'s reservation, by Ray's placement group table."""
        base = self.cluster.pg_name(sid)
        for r in await self.cluster.reservations():
            if r.name == base or r.name.startswith(base + "."):
                return r.node or None
        return None

    async def _shortfall(self, spec: SandboxSpec, on: str | None = None) -> str:
        need = f"{spec.cpus:g} CPU, {spec.memory_bytes / GiB:g} GiB memory and one sandbox slot"
        if on:
            need += f" on node {on[:12]}, where its linked sandbox runs"
        free = []
        for n in await self.cluster.usage():
            if n.alive and (on is None or n.id == on):
                f = {k: n.capacity[k] - n.used.get(k, 0) for k in n.capacity}
                free.append(
                    f"{n.id[:12]}: {f['cpu']:g} CPU, {f['memory']:g} GiB, {f['sandboxes']:g} slots"
                )
        where = "; ".join(free) if free else "no living node offers the 'cove' resource"
        return (
            f"no node has room for this sandbox: it needs {need}; waited "
            f"{self.placement_timeout:g}s for room. Free now: {where}"
        )

    async def _release(self, name: str | None, keep: str | None = None) -> None:
        """Remove the reservation `name` and those a resize made (`name.<n>`), but `keep`."""
        if not name:
            return
        from ray.util import get_placement_group

        names = {
            r.name
            for r in await self.cluster.reservations(pending=True)
            if r.name == name or r.name.startswith(name + ".")
        }
        for n in names - {keep}:
            try:
                pg = await asyncio.to_thread(get_placement_group, n)
            except ValueError:
                continue  # already gone
            await self._remove_pg(pg)

    # -- the contract ------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> RuntimeHandle:
        name, node_id = await self._reserve(spec, on=await self._owner_node(spec))
        try:
            node = await self._node(node_id)
            if spec.image:
                await self.shipping.ensure_image(node, spec.image)
            state = await self._call(node, "create", spec)
        except BaseException:
            await self._release(name)
            raise
        return RuntimeHandle(spec.id, self.name, {**state, "node": node_id, "placement": name})

    async def start(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        node = await self._node(handle.state["node"])
        self._exited.discard(handle.sandbox_id)
        state = await self._call(node, "start", handle.sandbox_id, handle.state, spec)
        _replace(handle, state)

    async def stop(self, handle: RuntimeHandle, grace: float = 5.0) -> None:
        try:
            node = await self._node(handle.state["node"])
        except SandboxError:  # the node is gone, and every process of the sandbox with it
            handle.state.pop("pid", None)
            return
        state = await self._call(node, "stop", handle.sandbox_id, handle.state, grace)
        _replace(handle, state)

    async def destroy(self, handle: RuntimeHandle) -> None:
        node_id = handle.state.get("node")  # none: a create the control plane died in
        if node_id:
            with contextlib.suppress(SandboxError):  # a lost node: only the reservation is left
                node = await self._node(node_id)
                await self._call(node, "destroy", handle.sandbox_id, handle.state)
        handle.state.pop("pid", None)
        await self._release(
            handle.state.get("placement") or self.cluster.pg_name(handle.sandbox_id)
        )
        self._exited.discard(handle.sandbox_id)

    def is_running(self, handle: RuntimeHandle) -> bool:
        node = self.cluster.nodes.get(handle.state.get("node", ""))
        return (
            node is not None
            and node.alive
            and bool(handle.state.get("pid"))
            and handle.sandbox_id not in self._exited
        )

    def agent_endpoint(self, handle: RuntimeHandle) -> RelayEndpoint:
        node = self.cluster.nodes.get(handle.state.get("node", ""))
        if node is None or not node.alive or node.relay is None:
            raise SandboxError(f"sandbox {handle.sandbox_id}: {NODE_LOST}")
        host, port = node.relay
        return RelayEndpoint(host, port, handle.sandbox_id, self.secret)

    async def wait_exit(self, handle: RuntimeHandle) -> str:
        try:
            node = await self._node(handle.state["node"])
            reason = str(await self._call(node, "wait_exit", handle.sandbox_id, handle.state))
        except SandboxError as err:
            reason = err.message
            if reason == NODE_LOST:
                # Ray would re-place the reservation on a living node, holding room
                # for a sandbox that no longer runs anywhere: it goes now.
                await self._release(handle.state.get("placement"))
        self._exited.add(handle.sandbox_id)
        return reason

    async def cleanup_leftovers(self, known_ids: set[str]) -> list[str]:
        """Attach to every node's actor (a restart finds them all), and clean each."""
        await self.cluster.refresh()
        removed: set[str] = set()
        for node in self.cluster.living():
            try:
                node = await self._node(node.id)
                removed.update(await self._call(node, "cleanup_leftovers", sorted(known_ids)))
            except SandboxError:
                continue  # lost meanwhile: its sandboxes fail by the monitor
            except AgentUnavailable as exc:  # a start must not wait on one slow node
                log.warning("leftovers not cleaned: %s", exc)
                continue
        prefix = self.cluster.pg_name("")
        for r in await self.cluster.reservations(pending=True):
            sid = r.name[len(prefix) :].split(".")[0]
            if sid not in known_ids:
                await self._release(r.name)
                removed.add(sid)
        self._exited.update(removed)
        return sorted(removed)

    async def resize(self, handle: RuntimeHandle, cpus: float, memory_bytes: int) -> None:
        """A new reservation of the new size on the sandbox's node, then its cgroups.

        A placement group cannot change size and Ray's accounting must match
        the cgroups: the new one (`<name>.<n>`, pinned to the node) is held
        first, the old one released once the cgroups took the new size. A
        node without room answers 409 and nothing changes.
        """
        node = await self._node(handle.state["node"])
        base = handle.state["placement"]
        spec = SandboxSpec(handle.sandbox_id, cpus=cpus, memory_bytes=memory_bytes)
        try:
            new, _ = await self._reserve(spec, on=node.id, name=f"{base}.{secrets.token_hex(4)}")
        except NoCapacity:
            raise Conflict(
                f"node {node.id[:12]} has no room to resize sandbox {handle.sandbox_id} to "
                f"{cpus:g} CPU and {memory_bytes / GiB:g} GiB (waited "
                f"{self.placement_timeout:g}s); stop it and start it with the new size"
            ) from None
        try:
            await self._call(node, "resize", handle.sandbox_id, handle.state, cpus, memory_bytes)
        except BaseException:
            await self._release(new, keep=base)  # the new one goes, the old one stays
            raise
        await self._release(base, keep=new)

    async def set_network(
        self, handle: RuntimeHandle, old: NetworkPolicy, new: NetworkPolicy
    ) -> None:
        if self.is_running(handle):
            node = await self._node(handle.state["node"])
            await self._call(node, "set_network", handle.sandbox_id, handle.state, old, new)

    async def reattach(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        with contextlib.suppress(SandboxError):  # lost meanwhile: its watcher says so
            node = await self._node(handle.state["node"])
            await self._call(node, "reattach", handle.sandbox_id, handle.state, spec)

    async def probe(self, handle: RuntimeHandle) -> None:
        """The relay did not answer: ask the node's actor, so that a node that died
        mid-request is known lost at once (or once Ray declares it dead)."""
        node = self.cluster.nodes.get(handle.state.get("node", ""))
        if node is None or not node.alive or node.actor is None:
            return
        with contextlib.suppress(SandboxError, TimeoutError):
            await asyncio.wait_for(self._call(node, "pid"), PROBE_TIMEOUT)

    async def down_reason(self, handle: RuntimeHandle) -> str | None:
        """A sandbox found not running at startup: `node lost` if its node died
        (while the control plane was down, too); its reservation goes with it."""
        node_id = handle.state.get("node")
        node = self.cluster.nodes.get(node_id or "")
        if not node_id or (node is not None and node.alive):
            return None
        await self._release(handle.state.get("placement"))
        return NODE_LOST

    @property
    def network_note(self) -> str | None:
        return self._network_note

    async def usage(self, handle: RuntimeHandle) -> ResourceUsage | None:
        """The node's reading of the sandbox's cgroups and workspace (None once lost)."""
        if not self.is_running(handle):
            return None
        try:
            node = await self._node(handle.state["node"])
            usage: ResourceUsage | None = await self._call(
                node, "usage", handle.sandbox_id, handle.state
            )
        except SandboxError:
            return None
        return usage

    async def nodes(self) -> list[NodeUsage]:
        return await self.cluster.usage()

    # -- images: build steps on nodes, snapshots back -----------------------------------

    async def run_build_step(self, step: Step, out: Log, dest: Path) -> None:
        """`StepRunner`: the step in a build sandbox on a node Ray picks (reserved
        for the step's CPU and memory while it runs); its layer back at `dest`."""
        keys = self._layer_keys(step.lower)
        ro = {at: self._layer_keys(paths) for at, paths in step.ro_images.items()}
        spec = SandboxSpec(f"build-{secrets.token_hex(6)}", step.cpus, step.memory_bytes)
        reservation, node_id = await self._reserve(spec)
        try:
            node = await self._node(node_id)
            await self.shipping.ensure_layers(node, [*keys, *(k for ks in ro.values() for k in ks)])
            binds = {
                at: await self.shipping.ensure_tree(node, Path(d))
                for at, d in step.ro_binds.items()
            }
            staged: tuple[str, str] | None = None
            # Keys, not paths: the node has its own directories for them.
            sent = replace(step, lower=keys, ro_images=ro, ro_binds=binds)
            try:
                # A Ray generator: the step's output lines as the node yields them.
                async for ref in node.actor.build_step.remote(sent):
                    item = await ref
                    if isinstance(item, str):
                        out(item)
                    else:
                        staged = item
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.RayTaskError) as exc:
                raise self._unwrap(node, exc) from None
            if staged is None:
                raise SandboxError(f"node {node_id[:12]} ended the build step without its layer")
            await self._take(node, staged, dest)
        finally:
            await self._release(reservation)

    def _layer_keys(self, paths: list[str]) -> list[str]:
        """Layer directories of the control plane's store as their keys (nodes have
        their own directories for them)."""
        layers = self.images.root / "layers"
        keys = []
        for p in paths:
            if Path(p).parent != layers:
                raise BadRequest(f"build step layer {p} is not in the image store")
            keys.append(Path(p).name)
        return keys

    async def capture_changes(self, handle: RuntimeHandle, dest: Path) -> None:
        """`Capturer`: the sandbox's changes, made on its node, brought back to `dest`."""
        node = await self._node(handle.state["node"])
        staged = await self._call(node, "capture", handle.sandbox_id, handle.state)
        await self._take(node, staged, dest)

    async def _take(self, node: Node, staged: tuple[str, str], dest: Path) -> None:
        name, digest = staged
        try:
            await self.shipping.take(node, name, digest, dest)
        except BaseException:
            with contextlib.suppress(SandboxError):  # the node's copy goes either way
                await self._call(node, "drop_staged", name)
            raise

    # -- the control plane's own start and end -------------------------------------

    def serve(self) -> None:
        self._monitor = asyncio.get_running_loop().create_task(self._watch_nodes())

    async def _watch_nodes(self) -> None:
        """Ray's node table, read every second: a node Ray declares dead is lost.

        Ray's client API offers no subscription to node deaths (its GCS pubsub
        is internal), so this reads the table Ray itself keeps; how soon Ray
        declares a node dead is its health check's setting (docs/scale-out.md).
        """
        while True:
            try:
                await self.cluster.refresh()
            except Exception:  # the GCS unreachable for a moment: try again
                log.exception("reading Ray's node table failed")
            await asyncio.sleep(MONITOR_INTERVAL)

    async def close(self) -> None:
        """Node actors and sandboxes stay, for the next control plane."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor


def _replace(handle: RuntimeHandle, state: dict[str, Any]) -> None:
    """The actor's answer becomes the handle's state (in place: callers hold the dict)."""
    keep: dict[str, Any] = {k: handle.state[k] for k in ("node", "placement") if k in handle.state}
    handle.state.clear()
    handle.state.update(state)
    handle.state.update(keep)
