"""The network manager on its own: open, connect, and cancellations that leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess

import pytest

from cove.runtime.local.net import NetworkManager, alloc
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
