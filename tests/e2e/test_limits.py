"""CPU, memory and pids limits reach the sandbox's cgroups: the defaults (1 CPU,
1 GiB, 512 pids) and a non-default shape, on whichever cgroup version the host
runs (the other one is a skip that says what is missing)."""

from __future__ import annotations

import httpx
import pytest

from tests.cgroupfiles import VERSIONS, limits, skip_unless_host_runs

GiB = 1 << 30


@pytest.mark.parametrize("version", VERSIONS)
def test_default_and_chosen_limits_reach_the_cgroups(api: httpx.Client, version: str) -> None:
    skip_unless_host_runs(version)
    made = []
    try:
        for body, cpus, memory in (({}, 1.0, 1 * GiB), ({"cpu": 2, "memory": 3}, 2.0, 3 * GiB)):
            r = api.post("/api/sandbox", json=body)
            assert r.status_code == 200, r.text
            sb = r.json()
            made.append(sb["id"])
            assert (sb["cpu"], sb["memory"]) == (cpus, memory // GiB)
            got = limits(sb["id"])
            assert (got.cpus, got.memory_bytes, got.pids) == (cpus, memory, 512), body
    finally:
        for sid in made:
            api.delete(f"/api/sandbox/{sid}")
