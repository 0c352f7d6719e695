"""The network manager on its own: a cancelled attach leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
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
