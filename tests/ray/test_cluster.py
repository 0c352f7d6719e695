"""The cluster's own behaviour on a real 3-node Ray cluster (loopback, one machine):
placement spreads and never over-commits, a request that fits nowhere gets a clear 503,
a node that dies fails only its own sandboxes ("node lost"), a node that joins takes
creates at once, and a control-plane SIGKILL loses nothing.

The tests run in file order: the node killed here stays dead for the session.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.ray.conftest import PLACEMENT_TIMEOUT
from tests.raycluster import NODE_CPUS, RayCluster
from tests.serverproc import ServerProcess

NODE_LOST_DEADLINE = 30.0  # about 5 s when quiet (tests/raycluster.py); a bound, not a target


def create(server: ServerProcess, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.key}"}
    return httpx.post(f"{server.api_url}/sandbox", json=body, headers=headers, timeout=120)


def execute(api: httpx.Client, sid: str, command: str) -> httpx.Response:
    return api.post(f"/toolbox/{sid}/process/execute", json={"command": command})


def nodes_by_id(api: httpx.Client) -> dict[str, dict[str, Any]]:
    r = api.get("/api/nodes")
    assert r.status_code == 200, r.text
    return {n["id"]: n for n in r.json()}


def delete_all(api: httpx.Client, ids: list[str]) -> None:
    for sid in ids:
        assert api.delete(f"/api/sandbox/{sid}").status_code == 200


@pytest.mark.timeout(240)
def test_thirty_sandboxes_spread_over_all_three_nodes(
    ray_server: ServerProcess, ray_api: httpx.Client, ray_cluster: RayCluster
) -> None:
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: create(ray_server), range(30)))
    bodies = [a.json() for a in answers]
    ids = [b["id"] for b in bodies]
    try:
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert all(b["state"] == "started" for b in bodies), [b["errorReason"] for b in bodies]
        per_node = Counter(b["runnerId"] for b in bodies)
        # 12 CPUs per node and 1 per sandbox: Ray cannot fit 30 on fewer than three.
        assert set(per_node) == {ray_cluster.node_id(n) for n in ray_cluster.nodes[:3]}
        assert max(per_node.values()) <= NODE_CPUS
        listed = nodes_by_id(ray_api)
        for node_id, count in per_node.items():
            n = listed[node_id]
            assert n["alive"] and n["sandboxes"] == count
            assert n["used"]["cpu"] == count and n["free"]["cpu"] == NODE_CPUS - count
            assert n["capacity"]["sandboxes"] == 12
        # Every sandbox answers through its own node's relay, with its own identity.
        for b in bodies[:: len(bodies) // 6]:
            out = execute(ray_api, b["id"], "echo $HOSTNAME-$((1+1))").json()
            assert out["exitCode"] == 0 and out["result"].strip().endswith("-2")
    finally:
        delete_all(ray_api, ids)
    assert all(n["sandboxes"] == 0 for n in nodes_by_id(ray_api).values())


def test_a_request_that_fits_no_node_is_refused_after_the_deadline(
    ray_server: ServerProcess, ray_api: httpx.Client
) -> None:
    started = time.monotonic()
    r = create(ray_server, cpu=NODE_CPUS + 1)
    waited = time.monotonic() - started
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["code"] == "NO_CAPACITY"
    assert f"needs {NODE_CPUS + 1} CPU" in body["message"]
    assert "Free now:" in body["message"] and f"{NODE_CPUS} CPU" in body["message"]
    assert PLACEMENT_TIMEOUT <= waited < PLACEMENT_TIMEOUT + 10
    # Nothing is left of it: no record, no reservation.
    assert ray_api.get("/api/sandbox").json()["total"] == 0
    assert all(n["used"]["cpu"] == 0 for n in nodes_by_id(ray_api).values())


@pytest.mark.timeout(180)
def test_a_dead_node_fails_only_its_sandboxes(
    ray_server: ServerProcess, ray_api: httpx.Client, ray_cluster: RayCluster
) -> None:
    victim = ray_cluster.nodes[1]  # not the head: the cluster lives on
    victim_id = ray_cluster.node_id(victim)
    bodies: list[dict[str, Any]] = []
    while len(bodies) < 12:  # until the victim and another node each hold some
        bodies.append(create(ray_server).json())
        on = Counter(b["runnerId"] for b in bodies)
        if on[victim_id] >= 1 and len(on) >= 2:
            break
    ids = [b["id"] for b in bodies]
    lost = [b["id"] for b in bodies if b["runnerId"] == victim_id]
    kept = [b["id"] for b in bodies if b["runnerId"] != victim_id]
    assert lost and kept
    for sid in kept:
        r = execute(ray_api, sid, "echo before > mark.txt")
        assert r.status_code == 200, (sid, r.text)  # the reason, if a node was lost early

    killed = ray_cluster.kill_raylet(victim)
    deadline = killed + NODE_LOST_DEADLINE
    states: dict[str, Any] = {}
    while time.monotonic() < deadline:
        states = {sid: ray_api.get(f"/api/sandbox/{sid}").json() for sid in lost}
        if all(s["state"] == "error" for s in states.values()):
            break
        time.sleep(0.2)
    took = time.monotonic() - killed
    assert all(s["state"] == "error" for s in states.values()), (took, states)
    assert all(s["errorReason"] == "node lost" for s in states.values())
    print(f"node lost after {took:.1f}s")

    try:
        # Every call on a lost sandbox says so.
        r = execute(ray_api, lost[0], "true")
        assert r.status_code == 409 and "node lost" in r.json()["message"]
        r = ray_api.post(f"/api/sandbox/{lost[0]}/start")
        assert r.status_code == 409 and "node lost" in r.json()["message"]
        # The other nodes' sandboxes are untouched, with their files.
        for sid in kept:
            out = execute(ray_api, sid, "cat mark.txt").json()
            assert out["result"] == "before\n"
            assert ray_api.get(f"/api/sandbox/{sid}").json()["state"] == "started"
        # New creates go to living nodes; the dead one is listed as such.
        fresh = create(ray_server).json()
        ids.append(fresh["id"])
        assert fresh["state"] == "started" and fresh["runnerId"] != victim_id
        listed = nodes_by_id(ray_api)
        assert listed[victim_id]["alive"] is False
        # The lost sandboxes hold no reservation anywhere (Ray would re-place it).
        held = sum(n["used"]["cpu"] for n in listed.values())
        assert held == len(kept) + 1
    finally:
        delete_all(ray_api, ids)  # a lost sandbox can be deleted: its reservation goes


def test_a_node_that_joins_takes_creates_at_once(
    ray_server: ServerProcess, ray_api: httpx.Client, ray_cluster: RayCluster
) -> None:
    big = ray_cluster.add_node(cpus=NODE_CPUS + 4)
    r = create(ray_server, cpu=NODE_CPUS + 2)  # fits only the new node
    assert r.status_code == 200, r.text
    body = r.json()
    try:
        assert body["state"] == "started" and body["runnerId"] == ray_cluster.node_id(big)
        out = execute(ray_api, body["id"], "nproc; echo joined").json()
        assert out["result"].endswith("joined\n")
        assert nodes_by_id(ray_api)[body["runnerId"]]["used"]["cpu"] == NODE_CPUS + 2
    finally:
        delete_all(ray_api, [body["id"]])


@pytest.mark.timeout(180)
def test_a_control_plane_sigkill_and_restart_finds_every_sandbox(
    ray_server: ServerProcess, ray_api: httpx.Client
) -> None:
    from daytona import SessionExecuteRequest

    bodies = [create(ray_server).json() for _ in range(4)]
    ids = [b["id"] for b in bodies]
    try:
        for b in bodies:
            execute(ray_api, b["id"], f"echo {b['id'][:8]} > who.txt").raise_for_status()
        # A long-running session command keeps running across the restart.
        from daytona import Daytona, DaytonaConfig

        sdk = Daytona(DaytonaConfig(api_key=ray_server.key, api_url=ray_server.api_url))
        sb = sdk.get(ids[0])
        sb.process.create_session("through")
        cmd = sb.process.execute_session_command(
            "through", SessionExecuteRequest(command="read line; echo got-$line", run_async=True)
        )

        ray_server.kill9()
        ray_server.start(timeout=60)

        for b in bodies:
            now = ray_api.get(f"/api/sandbox/{b['id']}").json()
            assert now["state"] == "started" and now["runnerId"] == b["runnerId"]
            out = execute(ray_api, b["id"], "cat who.txt").json()
            assert out["result"] == f"{b['id'][:8]}\n"
        sb.process.send_session_command_input("through", cmd.cmd_id, "after-restart\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done = sb.process.get_session_command("through", cmd.cmd_id)
            if done.exit_code is not None:
                break
            time.sleep(0.1)
        assert done.exit_code == 0
        logs = sb.process.get_session_command_logs("through", cmd.cmd_id)
        assert logs.stdout.splitlines()[-1] == "got-after-restart"  # after the echoed input
    finally:
        delete_all(ray_api, ids)


def test_cove_nodes_lists_every_node(ray_server: ServerProcess, ray_cluster: RayCluster) -> None:
    import json
    import os
    import subprocess

    from tests.serverproc import COVE

    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env.update(COVE_API_URL=ray_server.api_url, COVE_API_KEY=ray_server.key)
    table = subprocess.run([COVE, "nodes"], env=env, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "ALIVE", "SANDBOXES"]
    listed = json.loads(
        subprocess.run(
            [COVE, "nodes", "--json"], env=env, capture_output=True, text=True, timeout=60
        ).stdout
    )
    alive = {n["id"] for n in listed if n["alive"]}
    assert alive == {ray_cluster.node_id(n) for n in ray_cluster.nodes}
    for n in listed:
        assert set(n) == {"id", "alive", "capacity", "used", "free", "sandboxes"}
        assert any(line.startswith(n["id"]) for line in lines[1:])
    # The node killed above: listed as lost by a control plane that saw it die;
    # one restarted since never knew it.
    for n in listed:
        if not n["alive"]:
            assert n["id"] in {ray_cluster.node_id(x) for x in ray_cluster.lost}
            assert any(line.startswith(n["id"]) and "LOST" in line for line in lines)
