"""`NodeActor`: one per Ray node and control plane, owning that node's sandboxes.

A named, detached Ray actor pinned to its node (see `backend.NodeDirectory`):
it outlives the control plane that made it, so a restarted control plane
finds it, with every sandbox it runs, by name. The sandboxes are run by the
`local` backend's own code (`LocalBackend`: bubblewrap, per-sandbox uid,
cgroups, seccomp), so isolation on a node is exactly what it is on one host.
The actor also serves the node's toolbox relay (`relay`), which also carries
image layers in and build layers and snapshots out (`nodecache`, `transfer`).

Handle state crosses as plain dicts: the control plane persists it, and the
actor keeps the latest copy for the relay (which needs the sandbox's uid and
agent pid to find its pinned socket).

Imports nothing of Ray: the backend wraps this class with `ray.remote`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cove.images.step import Step
from cove.images.store import Image
from cove.runtime.base import ResourceUsage, RuntimeHandle, SandboxSpec
from cove.runtime.local import LocalBackend
from cove.runtime.ray import transfer
from cove.runtime.ray.nodecache import NodeCache
from cove.runtime.ray.relay import Relay

log = logging.getLogger("cove.runtime.ray")

State = dict[str, Any]


@dataclass(frozen=True)
class NodeOptions:
    """The control plane's settings a node's local backend runs with."""

    network: str = "off"  # COVE_NETWORK
    network_dns: str = ""  # COVE_NETWORK_DNS
    network_conn_cap: int = 0  # COVE_NETWORK_CONN_CAP (each node's sandboxes together)
    # COVE_RAY_WARM_POOL: pre-started sandboxes of the default shape per node.
    # They idle outside Ray's accounting (no placement group holds them).
    warm_pool: int = 0


def default_node_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/cove/ray-nodes")
    return Path.home() / ".local" / "share" / "cove" / "ray-nodes"


@dataclass(frozen=True)
class NodeSetup:
    """What a control plane starts a node's actor with (compared at each `hello`)."""

    node_dir: str | None
    runtime_dir: str | None
    options: NodeOptions


class NodeActor:
    def __init__(
        self,
        instance: str,
        node_id: str,
        node_dir: str | None,
        runtime_dir: str | None,
        options: NodeOptions | None = None,
    ) -> None:
        self.instance = instance
        self.node_id = node_id
        self.handles: dict[str, RuntimeHandle] = {}
        self.relay: Relay | None = None
        self.relay_address: tuple[str, int] | None = None
        self._build(NodeSetup(node_dir, runtime_dir, options or NodeOptions()))

    def _build(self, setup: NodeSetup) -> None:
        data_dir = Path(setup.node_dir) if setup.node_dir else default_node_dir()
        data_dir = data_dir / self.instance / self.node_id[:16]
        data_dir.mkdir(parents=True, exist_ok=True)
        opts = setup.options
        # The local backend's own network code: egress policies and link
        # groups work on a node as on one host (a link group lives on one
        # node: the control plane places followers on their owner's node).
        self.local = LocalBackend(
            data_dir,
            Path(setup.runtime_dir) if setup.runtime_dir else None,
            warm_pool=opts.warm_pool,
            network=opts.network,
            network_dns=opts.network_dns or None,
            network_conn_cap=opts.network_conn_cap,
        )
        self.cache = NodeCache(self.local.images)  # under data_dir: this node's own
        self.setup = setup

    async def _take_setup(self, setup: NodeSetup) -> str | None:
        """A restarted control plane found this actor: its settings hold from now on.

        A new warm pool size is taken live. Other settings (network, node and
        runtime dirs) make a new local backend, which only a node without
        sandboxes can have: one that runs some keeps what it has, and says so.
        """
        old = self.setup
        if replace(old, options=replace(old.options, warm_pool=0)) == replace(
            setup, options=replace(setup.options, warm_pool=0)
        ):
            self.local.warm_pool_size = setup.options.warm_pool
            if self.relay is not None:
                self.local.serve()  # the pool's size, as at the first hello
        elif self.handles:
            return (
                f"node {self.node_id[:12]} keeps the settings its actor was started with "
                f"({old}) while it runs {len(self.handles)} sandboxes; the new ones "
                f"({setup}) apply once it has none and the control plane restarts"
            )
        else:
            await self.local.close()
            self._build(setup)
            if self.relay is not None:
                self.local.serve()
        self.setup = setup
        return None

    def _handle(self, sid: str, state: State, *, own_if_running: bool = False) -> RuntimeHandle:
        """The sandbox's handle with the control plane's `state`; with `own_if_running`,
        this node's own while its agent runs (a start whose control plane died before
        it heard the answer left a record without the agent's pid: a stop must still
        end that agent; while that start still runs here, it is this node's
        handle that the start writes to)."""
        handle = self.handles.get(sid)
        if (
            handle is not None
            and own_if_running
            and (self.local.is_running(handle) or self.local.starting(sid))
        ):
            return handle
        if handle is None:
            handle = self.handles[sid] = RuntimeHandle(sid, "local", dict(state))
        else:
            handle.state = dict(state)
        return handle

    def _socket_of(self, sid: str) -> str:
        handle = self.handles.get(sid)
        if handle is None or not self.local.is_running(handle):
            raise LookupError(sid)
        return self.local.agent_socket(handle)

    async def hello(
        self, secret: bytes, host: str, port: int, setup: NodeSetup | None = None
    ) -> tuple[str, int, str | None, str | None]:
        """Take the control plane's secret and settings; the relay's address (started
        on first call, with the warm pool), why sandboxes here get no egress (None:
        they do), and which settings this node could not take (None: all)."""
        kept = None
        if setup is not None and setup != self.setup:
            kept = await self._take_setup(setup)
            if kept:
                log.warning("%s", kept)
        if self.relay is None:
            self.relay = Relay(secret, self._socket_of, self._transfer)
            self.relay_address = await self.relay.start(host, port)
            log.info("node %s: toolbox relay on %s:%d", self.node_id, *self.relay_address)
            self.local.serve()  # the pool's tasks live on this actor's loop
        self.relay.secret = secret
        assert self.relay_address is not None
        return (*self.relay_address, self.local.network_note, kept)

    async def _transfer(
        self, kind: str, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self.cache.serve(kind, name, reader, writer)

    async def settings(self) -> NodeSetup:
        """The settings this actor runs with now (operators and tests read them)."""
        return self.setup

    async def create(self, spec: SandboxSpec) -> State:
        handle = await self.local.create(spec)
        self.handles[spec.id] = handle
        return handle.state

    async def start(self, sid: str, state: State, spec: SandboxSpec) -> State:
        handle = self._handle(sid, state)
        await self.local.start(handle, spec)
        return handle.state

    async def stop(self, sid: str, state: State, grace: float) -> State:
        handle = self._handle(sid, state, own_if_running=True)
        await self.local.stop(handle, grace)
        return handle.state

    async def destroy(self, sid: str, state: State) -> None:
        await self.local.destroy(self._handle(sid, state, own_if_running=True))
        self.handles.pop(sid, None)

    async def wait_exit(self, sid: str, state: State) -> str:
        return await self.local.wait_exit(self._handle(sid, state))

    async def resize(self, sid: str, state: State, cpus: float, memory_bytes: int) -> None:
        await self.local.resize(self._handle(sid, state), cpus, memory_bytes)

    async def set_network(self, sid: str, state: State, old: Any, new: Any) -> None:
        await self.local.set_network(self._handle(sid, state), old, new)

    async def reattach(self, sid: str, state: State, spec: SandboxSpec) -> None:
        await self.local.reattach(self._handle(sid, state), spec)

    async def pid(self) -> int:
        """This actor's process (operators and fault tests signal it)."""
        return os.getpid()

    async def pooled(self) -> list[str]:
        """The ids of the pre-started sandboxes ready on this node now."""
        return self.local.pool.ready()

    async def usage(self, sid: str, state: State) -> ResourceUsage | None:
        return await self.local.usage(self._handle(sid, state))

    async def running(self, sids: list[str]) -> list[str]:
        """Which of these sandboxes (as this node knows them) have a live agent."""
        return [s for s in sids if s in self.handles and self.local.is_running(self.handles[s])]

    async def cleanup_leftovers(self, known: list[str]) -> list[str]:
        removed = await self.local.cleanup_leftovers(set(known))
        for sid in removed:
            self.handles.pop(sid, None)
        return removed

    # -- images: layers in, build layers and snapshots out (see nodecache) -------------

    async def missing_layers(self, keys: list[str]) -> list[str]:
        return self.cache.missing(keys)

    async def put_image(self, image: Image) -> str:
        return self.cache.put_image(image)

    async def build_step(self, step: Step) -> AsyncIterator[str | tuple[str, str]]:
        """Run one build step here (Ray streams what this yields): its output lines as
        they come, then (staged name, digest) of its layer for the control plane to take.

        `step`'s layers (and its build context) arrive as keys: the control plane
        shipped them here first; they become this node's cache paths.
        """
        step.lower = self.cache.layer_paths(step.lower)
        step.ro_images = {at: self.cache.layer_paths(ks) for at, ks in step.ro_images.items()}
        step.ro_binds = {at: self.cache.layer_paths([k])[0] for at, k in step.ro_binds.items()}
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        scratch = self.cache.scratch("layer")

        async def run() -> None:
            try:
                await self.local.run_build_step(step, lines.put_nowait, scratch / "tree")
            finally:
                lines.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            while (line := await lines.get()) is not None:
                yield line
            await task  # the step's own error, if it failed
            yield await self.cache.stage(scratch / "tree")
        except BaseException:
            task.cancel()
            await asyncio.to_thread(transfer.remove, scratch)
            raise

    async def capture(self, sid: str, state: State) -> tuple[str, str]:
        """The sandbox's changes as a tree staged for the control plane: (name, digest)."""
        scratch = self.cache.scratch("capture")
        try:
            await self.local.capture_changes(self._handle(sid, state), scratch / "tree")
        except BaseException:
            await asyncio.to_thread(transfer.remove, scratch)
            raise
        return await self.cache.stage(scratch / "tree")

    async def drop_staged(self, name: str) -> None:
        """A staged tree the control plane will not take (its take failed)."""
        self.cache.drop(name)
