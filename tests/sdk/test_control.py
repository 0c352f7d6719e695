"""Sandbox control through the Cove SDK, sync and async: the official SDK's
names (set_labels, set_*_interval, set_ttl, refresh_activity, resize,
get_metrics_latest, get_metrics), against a real server that samples fast."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove import AsyncCove, BadRequest, Conflict, Cove, NotFound
from tests.cgroupfiles import HOST, limits
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

GiB = 1 << 30


@pytest.fixture(scope="module")
def fast() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-sdkctl-") as tmp:
        env = {"COVE_METRICS_INTERVAL_SECONDS": "0.2"}
        proc = ServerProcess(Path(tmp) / "data", ["sdk-ctl"], env=env).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


def test_sync_control_calls(fast: ServerProcess) -> None:
    with Cove(api_url=fast.api_url, api_key=fast.key) as cove:
        sb = cove.create()
        other = cove.create()
        labels = sb.set_labels({"project": "x", "tier": "gold"})
        assert labels == {"project": "x", "tier": "gold", "code-toolbox-language": "python"}
        assert sb.labels == labels
        assert [s.id for s in cove.list(labels={"project": "x"})] == [sb.id]
        assert {s.id for s in cove.list()} >= {sb.id, other.id}

        sb.set_autostop_interval(15)
        sb.set_auto_delete_interval(-1)
        sb.set_auto_archive_interval(60)
        sb.set_auto_pause_interval(0)
        sb.set_ttl(0)
        assert (sb.auto_stop_interval, sb.auto_delete_interval) == (15, -1)
        assert (sb.auto_archive_interval, sb.auto_pause_interval) == (60, 0)
        fresh = cove.get(sb.id)
        assert (fresh.auto_stop_interval, fresh.auto_archive_interval) == (15, 60)
        with pytest.raises(BadRequest, match="positive"):
            sb.set_autostop_interval(-1)
        sb.refresh_activity()

        sb.resize(cpu=2, memory=2)
        assert (sb.cpu, sb.memory) == (2, 2)
        if HOST is not None:
            assert limits(sb.id).memory_bytes == 2 * GiB
        with pytest.raises(Conflict, match="stop it first"):
            sb.resize(disk=10)

        latest = sb.get_metrics_latest()
        assert (latest.cpu_count, latest.mem_total, latest.disk_total) == (2, 2 * GiB, 3 * GiB)
        history = wait_for(lambda: len(h := sb.get_metrics()) >= 2 and h, 20, "2 samples")
        assert history[0].timestamp <= history[-1].timestamp

        cove.delete(other)
        with pytest.raises(NotFound):
            other.set_labels({"a": "b"})


def test_async_control_calls(fast: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncCove(api_url=fast.api_url, api_key=fast.key) as cove:
            sb = await cove.create()
            assert (await sb.set_labels({"face": "async"}))["face"] == "async"
            found = await cove.list(labels={"face": "async"})
            assert [s.id for s in found] == [sb.id]
            await sb.set_autostop_interval(7)
            await sb.set_auto_delete_interval(30)
            await sb.set_auto_archive_interval(0)
            await sb.set_auto_pause_interval(5)
            await sb.set_ttl(90)
            assert (sb.auto_stop_interval, sb.auto_delete_interval) == (7, 30)
            assert sb.auto_pause_interval == 5
            await sb.refresh_activity()
            await sb.resize(cpu=2)
            assert sb.cpu == 2
            latest = await sb.get_metrics_latest()
            assert latest.cpu_count == 2 and latest.mem_used > 0
            deadline = asyncio.get_running_loop().time() + 20
            history: list[Any] = []
            while len(history) < 2:
                assert asyncio.get_running_loop().time() < deadline, "no samples"
                history = await sb.get_metrics()
                await asyncio.sleep(0.1)

    asyncio.run(asyncio.wait_for(main(), 60))
