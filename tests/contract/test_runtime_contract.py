"""The runtime backend contract. Every backend in `cove.runtime.BACKENDS` must pass.

A new backend is added to the table and runs this same suite unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.runtime import BACKENDS, RuntimeBackend, RuntimeHandle, SandboxSpec, make_backend
from cove.server.agentclient import AgentConnectionPool
from cove.settings import Settings


def _settings(request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    settings = Settings(data_dir=data_dir, backend=request.param)
    if request.param == "ray":  # a real 3-node cluster on loopback (tests/raycluster.py)
        cluster = request.getfixturevalue("ray_cluster")
        settings.ray_address = cluster.address
        settings.ray_node_dir = str(cluster.node_dir)
    return settings


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[RuntimeBackend]:
    with tempfile.TemporaryDirectory(prefix="cove-contract-") as tmp:
        be = make_backend(_settings(request, Path(tmp)))
        yield be
        asyncio.run(be.close())
        if request.param == "ray":
            import ray

            # No Ray driver (a C++ core worker with threads of its own) stays in
            # the test process through later tests, which start servers from it.
            ray.shutdown()


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


async def execute(be: RuntimeBackend, handle: RuntimeHandle, command: str) -> dict[str, Any]:
    """One call through the backend's agent endpoint, as the toolbox proxy makes it."""
    pool = AgentConnectionPool(be.agent_endpoint(handle))
    try:
        r = await pool.request(
            "POST",
            "/process/execute",
            {"Content-Type": "application/json"},
            json.dumps({"command": command}).encode(),
        )
    finally:
        pool.close()
    assert r.status == 200, r.body
    body: dict[str, Any] = json.loads(r.body)
    return body


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class Sandbox:
    """create → start for a test; destroy on exit, whatever happened."""

    def __init__(self, be: RuntimeBackend, spec: SandboxSpec) -> None:
        self.be = be
        self.spec = spec

    async def __aenter__(self) -> RuntimeHandle:
        self.handle = await self.be.create(self.spec)
        await self.be.start(self.handle, self.spec)
        return self.handle

    async def __aexit__(self, *exc: object) -> None:
        await self.be.destroy(self.handle)


def new_spec(**kw: Any) -> SandboxSpec:
    return SandboxSpec(id=f"contract-{os.urandom(4).hex()}", **kw)


def test_start_means_the_agent_answers(backend: RuntimeBackend) -> None:
    async def scenario() -> None:
        async with Sandbox(backend, new_spec(env={"GREETING": "hi"})) as h:
            assert backend.is_running(h)
            body = await execute(backend, h, "echo $GREETING")
            assert body["stdout"] == "hi\n"

    run(scenario)


def test_user_code_starts_with_no_signal_blocked(backend: RuntimeBackend) -> None:
    """Whatever thread spawned the agent (a Ray worker blocks SIGINT), interrupts work."""

    async def scenario() -> None:
        async with Sandbox(backend, new_spec()) as h:
            body = await execute(backend, h, "grep SigBlk /proc/self/status")
            assert body["stdout"].split() == ["SigBlk:", "0000000000000000"]

    run(scenario)


def test_stop_ends_everything_and_start_keeps_the_workspace(backend: RuntimeBackend) -> None:
    async def scenario() -> None:
        spec = new_spec()
        async with Sandbox(backend, spec) as h:
            await execute(backend, h, "echo kept > file.txt; (sleep 300 &)")
            await backend.stop(h, grace=2)
            assert not backend.is_running(h)
            await backend.start(h, spec)
            body = await execute(backend, h, "cat file.txt; pgrep -c sleep || true")
            assert body["stdout"] == "kept\n0\n"

    run(scenario)


def test_start_twice_is_harmless(backend: RuntimeBackend) -> None:
    async def scenario() -> None:
        spec = new_spec()
        async with Sandbox(backend, spec) as h:
            await backend.start(h, spec)
            assert (await execute(backend, h, "echo ok"))["stdout"] == "ok\n"

    run(scenario)


def test_an_agent_that_dies_is_reported_with_a_reason(backend: RuntimeBackend) -> None:
    async def scenario() -> None:
        async with Sandbox(backend, new_spec()) as h:
            waiter = asyncio.create_task(backend.wait_exit(h))
            await asyncio.sleep(0)
            assert not waiter.done()
            os.kill(int(h.state["pid"]), signal.SIGKILL)
            reason = await asyncio.wait_for(waiter, 10)
            assert "exited" in reason and "SIGKILL" in reason
            assert not backend.is_running(h)

    run(scenario)


def test_handle_state_survives_a_json_round_trip(backend: RuntimeBackend) -> None:
    """What the store persists is enough for a new control plane to find the sandbox."""

    async def scenario() -> None:
        async with Sandbox(backend, new_spec()) as h:
            copy = RuntimeHandle(h.sandbox_id, h.backend, json.loads(json.dumps(h.state)))
            assert backend.is_running(copy)
            assert (await execute(backend, copy, "echo again"))["stdout"] == "again\n"

    run(scenario)


def test_destroy_removes_everything(backend: RuntimeBackend) -> None:
    async def scenario() -> None:
        spec = new_spec()
        h = await backend.create(spec)
        await backend.start(h, spec)
        endpoint = backend.agent_endpoint(h)
        await backend.destroy(h)
        assert not backend.is_running(h)
        with pytest.raises(OSError):
            (await endpoint.connect()).close()

    run(scenario)


def test_leftovers_of_unknown_sandboxes_are_cleaned(backend: RuntimeBackend) -> None:
    async def scenario() -> None:
        spec = new_spec()
        h = await backend.create(spec)
        await backend.start(h, spec)
        pid = int(h.state["pid"])
        removed = await backend.cleanup_leftovers(known_ids=set())
        assert spec.id in removed
        assert not backend.is_running(h)
        assert not _alive(pid)

    run(scenario)
