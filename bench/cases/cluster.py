"""The `ray` backend next to `local`, in the same run: creates per second, time to
interactive, exec round trip, and what a node relay adds to each toolbox call.

Both servers run on this machine; the ray one places sandboxes on a 3-node Ray
cluster on loopback (tests/raycluster.py), so the relay hop is loopback TCP:
a real cluster adds its network's round trip on top.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.client import NO_QUOTAS, Cove, RawConnection, acreate, aexec
from bench.stats import Row, Summary, timed
from tests.raycluster import ray_cluster
from tests.serverproc import ServerProcess


@contextmanager
def ray_serving(data_dir: Path) -> Iterator[Cove]:
    """A `cove serve --backend ray` on a fresh 3-node loopback cluster."""
    with ray_cluster(3) as cluster:
        env = {**cluster.env(), "COVE_RAY_PLACEMENT_TIMEOUT": "60", **NO_QUOTAS}
        args = ["--backend", "ray", "--ray-address", cluster.address]
        server = ServerProcess(data_dir, ["bench-key"], env=env, args=args).start(timeout=90)
        cove = Cove(server)
        try:
            yield cove
        finally:
            for sid in cove.list_ids():
                cove.delete(sid)
            cove.close()
            server.stop()


def _creates_per_second(cove: Cove, n: int) -> tuple[float, list[str]]:
    async def run() -> tuple[float, list[str]]:
        async with cove.aclient(n) as client:
            start = time.perf_counter()
            ids = await asyncio.gather(*(acreate(client) for _ in range(n)))
            await asyncio.gather(*(aexec(client, sid, "true") for sid in ids))
            return n / (time.perf_counter() - start), list(ids)

    return asyncio.run(run())


def _exec_samples(cove: Cove, sid: str, runs: int) -> list[float]:
    conn = RawConnection(cove.server.port, cove.server.key)
    path = f"/toolbox/{sid}/process/execute"

    async def once() -> None:
        status, body = await conn.post(path, {"command": "true"})
        if status != 200:
            raise RuntimeError(f"exec: HTTP {status} {body[:200]!r}")

    with asyncio.Runner() as runner:
        samples = timed(lambda: runner.run(once()), runs, warmup=5)
        conn.close()  # while its loop is open
    return samples


def _tti(cove: Cove, runs: int) -> list[float]:
    def once() -> None:
        sid = cove.create()
        cove.exec(sid, "true")
        cove.delete(sid)

    return timed(once, runs, warmup=1)


def measure(local: Cove, ray: Cove, burst: int, runs: int) -> list[Row]:
    rows = []
    ray_rate, ray_ids = _creates_per_second(ray, burst)
    local_rate, local_ids = _creates_per_second(local, burst)
    rows.append(
        Row(
            "cluster_creates",
            f"Creates per second, {burst} at once until each answered `true` (ray backend)",
            Summary.of([ray_rate], "/s"),
            Summary.of([local_rate], "/s"),
            "the same burst on the local backend (no pool)",
            note="3 Ray nodes on this one 2-core machine: the nodes share its CPUs",
        )
    )
    for sid in ray_ids:
        ray.delete(sid)
    for sid in local_ids:
        local.delete(sid)
    ray_tti, local_tti = _tti(ray, runs // 4), _tti(local, runs // 4)
    rows.append(
        Row(
            "cluster_tti",
            "Time to interactive (create + first `true`), sequential, ray backend",
            Summary.of(ray_tti, "ms"),
            Summary.of(local_tti, "ms"),
            "the local backend, cold start, no pool",
            samples=ray_tti,
            baseline_samples=local_tti,
        )
    )
    rsid, lsid = ray.create(), local.create()
    ray_exec, local_exec = _exec_samples(ray, rsid, runs), _exec_samples(local, lsid, runs)
    ray.delete(rsid)
    local.delete(lsid)
    added = Summary.of(ray_exec, "ms").median - Summary.of(local_exec, "ms").median
    rows.append(
        Row(
            "cluster_exec",
            "Exec round trip of `true` through a node relay (ray backend)",
            Summary.of(ray_exec, "ms"),
            Summary.of(local_exec, "ms"),
            "the local backend (unix socket to the agent)",
            note=f"the relay hop adds {added:.2f} ms per toolbox call (median difference)",
            samples=ray_exec,
            baseline_samples=local_exec,
        )
    )
    return rows
