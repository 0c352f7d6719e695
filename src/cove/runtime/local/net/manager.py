"""Each sandbox's network over its lifetime: attach at start, policy, detach.

A sandbox's network lives while its agent runs: `open` (the namespace)
before bwrap starts, as the agent is launched inside it, and `connect`
(pair, rules, resolver) while the agent starts up, awaited before the
sandbox is given to anyone; `detach` once it has stopped. A pooled
sandbox is attached with the default policy and gets its own at
adoption, before anyone can run code in it. After a control-plane
restart, `resume` serves DNS again for sandboxes that kept running, and
`cleanup` removes the namespaces, rules and claims of sandboxes this
control plane no longer knows (e.g. after a SIGKILL).

Link groups (an owner and its followers, issue 22): `join` puts a running
sandbox in its group; every member's peer set and resolver names are then
rebuilt from the members running now, so a restart (which joins each
running sandbox again) never keeps an address a departed member held.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
from dataclasses import dataclass
from typing import Any

from cove.runtime.local.net import alloc, links, resolver, rules
from cove.wire.protocol.network import NetworkPolicy

log = logging.getLogger("cove.runtime.net")


def available() -> str | None:
    """None if egress can be given here, else why not."""
    import os

    if os.geteuid() != 0:
        return "the control plane is not root (veth pairs and nftables need CAP_NET_ADMIN)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 nftables)"
    if not rules.available():
        return "nftables does not answer (`nft list tables` failed)"
    return None


def slot_of(state: dict[str, Any]) -> alloc.Slot | None:
    net = state.get("net")
    return alloc.Slot(int(net["index"])) if net else None


@dataclass
class _Member:
    slot: alloc.Slot
    names: list[str]  # what its peers may resolve it by: sandbox name and id


class NetworkManager:
    def __init__(
        self, instance: str, upstream: tuple[str, int] | None = None, conn_cap: int = 0
    ) -> None:
        if conn_cap < 0:
            raise ValueError(f"COVE_NETWORK_CONN_CAP must be 0 (automatic) or more, got {conn_cap}")
        self.instance = instance
        # Connections all its sandboxes may hold together (0: half the host's conntrack table).
        self.conn_cap = conn_cap
        self._cap_set = False  # this process has put its cap in the table
        self.upstream = upstream or resolver.host_upstream()
        self._resolvers: dict[int, resolver.SandboxResolver] = {}
        self._groups: dict[str, dict[int, _Member]] = {}  # link group -> slot index -> member
        self._group_of: dict[int, str] = {}
        # Slot index -> the peer slots its `peers` set holds, where this process
        # knows it (made empty by its connect, or written by it since). A set
        # already holding what a relink asks is not written again: every create
        # joins its own one-member group, which would cost an `nft` run (~6 ms,
        # half of a warm-pool claim) to flush a set that is empty anyway.
        self._peers: dict[int, frozenset[int]] = {}
        # Relinks one at a time: what `_peers` records is then what the last
        # write put in the table, whatever order concurrent writes ended in.
        self._relinking = asyncio.Lock()
        self._background: set[asyncio.Future[Any]] = set()
        self._connecting: dict[int, asyncio.Future[None]] = {}  # slot index -> connect running

    async def attach(self, sandbox_id: str, policy: NetworkPolicy) -> dict[str, Any]:
        """Namespace, pair, rules and resolver for a sandbox about to start; its state.

        `open` then `connect`; a start that launches its agent between the
        two (`LocalBackend._start`) hides the second behind the agent's own
        start-up.
        """
        net = await self.open(sandbox_id)
        try:
            await self.connect(net, policy)
        except BaseException:
            await self.detach(net)
            raise
        return net

    async def open(self, sandbox_id: str) -> dict[str, Any]:
        """A claimed slot and its namespace, still empty; its state.

        What runs in the namespace before `connect` has finished sees a down
        `lo` and no other interface: it reaches nothing, and never the
        host's network.

        Shielded: a caller cancelled midway (a client that hung up, a pool
        closing) must not leave a half-made network. The open finishes and
        is then undone in the background.
        """
        task = asyncio.ensure_future(self._open(sandbox_id))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._undo)
            # Until it finishes, `close` waits for it (and then for its undoing).
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            raise

    def _undo(self, task: asyncio.Future[dict[str, Any]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return  # `_open` removed what it had made
        undo = asyncio.ensure_future(self.detach(task.result()))
        self._background.add(undo)
        undo.add_done_callback(self._background.discard)

    async def _open(self, sandbox_id: str) -> dict[str, Any]:
        for attempt in range(3):
            # Claim first: another control plane drops the shared table only when
            # no claim exists, so after ours the table is made if missing and stays.
            slot = alloc.claim(self.instance, sandbox_id)
            try:
                # A gateway port still held (e.g. by a control plane that ran
                # this address before and has not let go): try another address
                # now, before anything is started in this slot's namespace.
                await asyncio.to_thread(resolver.check_port_free, slot.gateway)
                await asyncio.to_thread(links.create_namespace, slot)
            except OSError as exc:
                await self._teardown(slot)
                if exc.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                log.warning("%s: DNS port of %s in use; taking another", sandbox_id, slot.gateway)
            except BaseException:
                await self._teardown(slot)
                raise
            else:
                return {"index": slot.index}
        raise AssertionError("unreachable")

    async def connect(self, net: dict[str, Any], policy: NetworkPolicy) -> None:
        """Pair, addresses, rules and resolver of an opened slot.

        Finishes even if the caller is cancelled, and `detach` of the slot
        waits for it first, so nothing it makes outlives the teardown. On a
        failure the caller detaches (which removes whatever was made).
        """
        slot = alloc.Slot(int(net["index"]))
        task = asyncio.ensure_future(self._connect(slot, policy))
        self._connecting[slot.index] = task
        self._background.add(task)

        def done(t: asyncio.Future[None]) -> None:
            self._background.discard(t)
            if self._connecting.get(slot.index) is t:
                del self._connecting[slot.index]
            if not t.cancelled():
                t.exception()  # the caller's to report; retrieved if it was cancelled

        task.add_done_callback(done)
        await asyncio.shield(task)

    async def _connect(self, slot: alloc.Slot, policy: NetworkPolicy) -> None:
        made = await asyncio.to_thread(rules.ensure_table)
        await self._ensure_cap(made)
        await asyncio.to_thread(links.create_pair, slot)
        await asyncio.to_thread(rules.add_sandbox, slot, policy, self.instance)
        self._peers[slot.index] = frozenset()
        await self._serve_dns(slot, policy)

    async def _ensure_cap(self, table_made: bool) -> None:
        """This control plane's cap in the table: once per process, and again in a new table."""
        if self._cap_set and not table_made:
            return
        cap = self.conn_cap or await asyncio.to_thread(rules.default_cap)
        await asyncio.to_thread(rules.ensure_cap, self.instance, cap)
        self._cap_set = True

    async def _serve_dns(self, slot: alloc.Slot, policy: NetworkPolicy) -> None:
        def allow(addresses: list[str], ttl: int) -> None:
            rules.allow_resolved(slot, addresses, ttl)

        self._resolvers[slot.index] = await resolver.serve(
            slot.gateway, slot.address, self.upstream, policy, allow
        )

    async def set_policy(
        self, net: dict[str, Any], policy: NetworkPolicy, *, flush_dns: bool
    ) -> None:
        """`policy` in force from the next connection; `flush_dns` closes resolved names too."""
        slot = alloc.Slot(int(net["index"]))
        await asyncio.to_thread(rules.set_policy, slot, policy, flush_dns=flush_dns)
        r = self._resolvers.get(slot.index)
        if r is not None:
            r.policy = policy

    async def resume(self, net: dict[str, Any], policy: NetworkPolicy) -> None:
        """A running sandbox found after a restart: serve its DNS again."""
        slot = alloc.Slot(int(net["index"]))
        if slot.index in self._resolvers or not links.exists(slot):
            return
        try:
            # The rules of this code (it may be newer than the one that attached the sandbox).
            made = await asyncio.to_thread(rules.ensure_table)
            await self._ensure_cap(made)
            await asyncio.to_thread(rules.set_policy, slot, policy, flush_dns=False)
            await asyncio.to_thread(rules.count_in_cap, slot, self.instance)
            await self._serve_dns(slot, policy)
        except OSError as exc:  # e.g. another control plane on this data dir serves it
            log.warning("sandbox %s: its DNS is not served here: %s", slot.netns, exc)

    def rename(self, net: dict[str, Any], sandbox_id: str) -> None:
        alloc.rename(alloc.Slot(int(net["index"])), self.instance, sandbox_id)

    async def detach(self, net: dict[str, Any]) -> None:
        """Everything of the sandbox's network gone; finishes even if the caller is cancelled."""
        await asyncio.shield(self._teardown(alloc.Slot(int(net["index"]))))

    async def join(self, net: dict[str, Any], group: str, names: list[str]) -> None:
        """The running sandbox on `net` reaches, and resolves, the members of `group`."""
        slot = alloc.Slot(int(net["index"]))
        await self.leave(slot)
        self._groups.setdefault(group, {})[slot.index] = _Member(slot, names)
        self._group_of[slot.index] = group
        await self._relink(group)

    async def leave(self, slot: alloc.Slot) -> None:
        group = self._group_of.pop(slot.index, None)
        if group is None:
            return
        members = self._groups[group]
        members.pop(slot.index, None)
        if not members:
            del self._groups[group]
        await self._relink(group)

    async def _relink(self, group: str) -> None:
        async with self._relinking:
            await self._relink_locked(group)

    async def _relink_locked(self, group: str) -> None:
        members = list(self._groups.get(group, {}).values())
        peers = {m.slot: [o.slot for o in members if o is not m] for m in members}
        changed = {
            slot: ps
            for slot, ps in peers.items()
            if self._peers.get(slot.index) != frozenset(p.index for p in ps)
        }
        for slot in changed:  # unknown until the write below is done
            self._peers.pop(slot.index, None)
        try:
            if changed:
                await asyncio.to_thread(rules.set_peers, changed)
                for slot, ps in changed.items():
                    self._peers[slot.index] = frozenset(p.index for p in ps)
        except OSError as exc:  # a member torn down meanwhile: its own leave relinks again
            log.warning("link group %s: peers not updated: %s", group, exc)
        for m in members:
            r = self._resolvers.get(m.slot.index)
            if r is not None:
                r.hosts = {
                    name.lower(): o.slot.address for o in members if o is not m for name in o.names
                }

    async def _teardown(self, slot: alloc.Slot) -> None:
        pending = self._connecting.get(slot.index)
        if pending is not None:  # a connect still making things: they go too, after it
            await asyncio.wait([pending])
        await self.leave(slot)
        r = self._resolvers.pop(slot.index, None)
        if r is not None:
            r.close()
        self._peers.pop(slot.index, None)
        await asyncio.to_thread(rules.remove_sandbox, slot)
        await asyncio.to_thread(links.remove, slot)
        alloc.release(slot)

    async def cleanup(self, known_ids: set[str]) -> list[str]:
        """Networks of this control plane's sandboxes that no record knows: removed."""
        removed = []
        for index, sid in alloc.owned(self.instance).items():
            if sid in known_ids:
                continue
            log.info("removing the leftover network of sandbox %s (cove-%d)", sid, index)
            await self._teardown(alloc.Slot(index))
            removed.append(sid)
        return removed

    async def close(self) -> None:
        """Stop serving DNS; drop the shared table if no control plane has sandboxes left."""
        while self._background:  # an attach finishing adds its undoing here
            await asyncio.gather(*self._background, return_exceptions=True)
        for r in self._resolvers.values():
            r.close()
        self._resolvers.clear()
        try:
            if not alloc.owned(self.instance):  # sandboxes that outlive it keep it
                await asyncio.to_thread(rules.remove_cap, self.instance)
            await asyncio.to_thread(rules.remove_table_if_unused)
        except OSError as exc:
            log.warning("could not remove the nftables table: %s", exc)

    @staticmethod
    def resolv_conf(net: dict[str, Any]) -> bytes:
        slot = alloc.Slot(int(net["index"]))
        return f"nameserver {slot.gateway}\noptions timeout:2 attempts:2\n".encode()

    @staticmethod
    def netns_path(net: dict[str, Any]) -> str:
        return links.netns_path(alloc.Slot(int(net["index"])))
