"""The network manager on its own: open, connect, and cancellations that leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess

import pytest

from cove.runtime.local.net import NetworkManager, alloc, rules
from cove.wire.protocol.network import NetworkPolicy
from tests.network.internet import can_run

pytestmark = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))


def _bound_dns_ports() -> str:
    out = subprocess.run(["ss", "-ulpnH"], capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if f"pid={os.getpid()}," in line)


def test_a_cancelled_attach_is_finished_then_undone() -> None:
    instance = f"test-cancel-{os.getpid()}"

    async def scenario() -> None:
        m = NetworkManager(instance, ("127.0.0.1", 53))
        for ticks in (0, 1, 3, 10):  # cancelled at different points of the attach
            task = asyncio.ensure_future(m.attach("sb", NetworkPolicy()))
            for _ in range(ticks):
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await m.close()  # waits for the undoing

    asyncio.run(asyncio.wait_for(scenario(), 60))
    # A claim goes last, after the namespace, interface and rules of its network.
    assert alloc.owned(instance) == {}
    assert _bound_dns_ports() == ""


def _links_in(netns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", netns, "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def test_an_opened_namespace_reaches_nothing_until_connected() -> None:
    """A start launches its agent between `open` and `connect`: what it sees meanwhile."""
    instance = f"test-open-{os.getpid()}"

    async def scenario() -> None:
        m = NetworkManager(instance, ("127.0.0.1", 53))
        net = await m.open("sb")
        slot = alloc.Slot(net["index"])
        try:
            assert _links_in(slot.netns) == ["lo"]
            state = subprocess.run(
                ["ip", "-n", slot.netns, "-o", "link", "show", "lo"],
                capture_output=True,
                text=True,
            ).stdout
            assert "state DOWN" in state or ",UP" not in state
            await m.connect(net, NetworkPolicy())
            assert sorted(_links_in(slot.netns)) == ["eth0", "lo"]
        finally:
            await m.detach(net)
        await m.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert alloc.owned(instance) == {}
    assert _bound_dns_ports() == ""


def test_a_cancelled_connect_is_finished_before_its_detach() -> None:
    instance = f"test-connect-{os.getpid()}"

    async def scenario() -> None:
        m = NetworkManager(instance, ("127.0.0.1", 53))
        for ticks in (0, 1, 3, 10):
            net = await m.open("sb")
            task = asyncio.ensure_future(m.connect(net, NetworkPolicy()))
            for _ in range(ticks):
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await m.detach(net)  # waits for the connect still running, then undoes it
        await m.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert alloc.owned(instance) == {}
    assert _bound_dns_ports() == ""


def test_open_skips_a_slot_whose_dns_port_is_held() -> None:
    instance = f"test-held-{os.getpid()}"

    async def scenario() -> None:
        m = NetworkManager(instance, ("127.0.0.1", 53))
        first = await m.open("sb")
        await m.detach(first)
        gateway = alloc.Slot(first["index"]).gateway
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the address is on no interface
        held.bind((gateway, 53))
        try:
            net = await m.open("sb")
            try:
                assert net["index"] != first["index"]
                await m.connect(net, NetworkPolicy())  # its own port binds
            finally:
                await m.detach(net)
        finally:
            held.close()
        await m.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert alloc.owned(instance) == {}


def _peer_addresses(slot: alloc.Slot) -> set[str]:
    name = rules._names(slot)["peers"]
    out = subprocess.run(
        ["nft", "list", "set", *rules.TABLE.split(), name],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"elements = \{([^}]*)\}", out)
    return {a.strip() for a in found.group(1).split(",")} if found else set()


def test_link_peers_are_written_when_they_change_and_start_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every create joins its own one-member group: that writes nothing (an `nft`
    run saved per create), yet a peer set holds exactly the group's other members,
    and a slot's set starts empty even over a leftover of that slot."""
    instance = f"test-peers-{os.getpid()}"
    writes: list[set[int]] = []
    real = rules.set_peers

    def counted(groups: dict[alloc.Slot, list[alloc.Slot]]) -> None:
        writes.append({slot.index for slot in groups})
        real(groups)

    monkeypatch.setattr(rules, "set_peers", counted)

    async def scenario() -> None:
        m = NetworkManager(instance, ("127.0.0.1", 53))
        a = await m.attach("a", NetworkPolicy())
        b = await m.attach("b", NetworkPolicy())
        sa, sb = alloc.Slot(a["index"]), alloc.Slot(b["index"])
        try:
            await m.join(a, "a", ["a"])  # as every create: its own group, alone
            assert writes == []
            await m.join(b, "a", ["b"])  # a follower: both sets change
            assert writes == [{sa.index, sb.index}]
            assert _peer_addresses(sa) == {sb.address}
            assert _peer_addresses(sb) == {sa.address}
            await m.leave(sb)  # back to one member: a's set is emptied
            assert writes[-1] == {sa.index}
            assert _peer_addresses(sa) == set()
            # A leftover of b's slot with a peer in its set (a crash mid-create):
            # the next sandbox's rules on that slot start with an empty set.
            name = rules._names(sb)["peers"]
            rules.nft(f"add element {rules.TABLE} {name} {{ {sa.address} }}\n")
            await asyncio.to_thread(rules.add_sandbox, sb, NetworkPolicy(), instance)
            assert _peer_addresses(sb) == set()
        finally:
            await m.detach(a)
            await m.detach(b)
            await m.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert alloc.owned(instance) == {}


def test_an_older_control_planes_sets_go_with_its_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sets of a sandbox attached before its lists became rules are found by one
    look per process, and deleted with it; a sandbox without them costs no look."""
    instance = f"test-legacy-{os.getpid()}"

    async def scenario() -> None:
        m = NetworkManager(instance, ("127.0.0.1", 53))
        old = await m.attach("old", NetworkPolicy())
        new = await m.attach("new", NetworkPolicy())
        so = alloc.Slot(old["index"])
        legacy = [f"sb{so.index}_{kind}" for kind in rules._LEGACY_SETS]
        for name in legacy:  # as the older code made them
            rules.nft(f"add set {rules.TABLE} {name} {{ type ipv4_addr; flags interval; }}\n")
        monkeypatch.setattr(rules, "_legacy_slots", None)  # this process has not looked yet
        await m.detach(old)
        assert [n for n in legacy if rules._has("set", n)] == []
        assert rules._legacy_slots == set()
        await m.detach(new)
        await m.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert alloc.owned(instance) == {}
