"""A stop that comes while the sandbox is still starting ends what the start made.

On the ray backend a node's actor outlives a control plane killed during a
burst of creates: the next control plane stops each sandbox it finds
"starting", with the state it had recorded before that start (no agent pid),
while the actor may still be running the start. The stop waited for the
agent's exit and nobody ended the agent, so the control plane's start-up hung
for good (tests/ray/test_faults.py, under load). Here the same order of events
is made certain on the local backend: the start is held between spawning
the agent and reading its "ready".
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cove.runtime.base import RuntimeHandle, SandboxSpec
from cove.runtime.local import LocalBackend
from cove.runtime.local import backend as local_backend
from cove.runtime.local.fs import AGENT_PYTHON
from tests.reliability.helpers import sandbox_pids

STOP_DEADLINE = 60.0  # a hang guard, far beyond a stop's second or two


async def until(check: Callable[[], object], deadline: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_stop_during_a_start_ends_the_agent_the_start_spawned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not os.path.exists(AGENT_PYTHON):
        pytest.skip(f"the agent's interpreter {AGENT_PYTHON} is not installed")
    real_read_until = local_backend.read_until

    async def scenario(be: LocalBackend) -> None:
        held = asyncio.Event()

        async def read_after_the_stop(fd: int, end: bytes) -> bytes:
            await held.wait()
            return await real_read_until(fd, end)

        monkeypatch.setattr(local_backend, "read_until", read_after_the_stop)
        spec = SandboxSpec(id=f"stop-in-start-{os.urandom(4).hex()}")
        handle = await be.create(spec)
        recorded = RuntimeHandle(handle.sandbox_id, handle.backend, dict(handle.state))
        starting = asyncio.ensure_future(be.start(handle, spec))
        try:
            # Spawned, not yet ready: its processes are in the sandbox's cgroups.
            await until(lambda: sandbox_pids(spec.id), 30, "the agent to be spawned")
            stopping = asyncio.ensure_future(be.stop(recorded, grace=1.0))
            for _ in range(5):  # the stop runs up to its first wait
                await asyncio.sleep(0)
            assert not stopping.done()
            held.set()  # the start goes on to "ready" while the stop waits
            await asyncio.wait_for(stopping, STOP_DEADLINE)
            await asyncio.wait([starting])
            assert not be.is_running(recorded)
            assert not be.is_running(handle)
            await until(lambda: not sandbox_pids(spec.id), 30, "the agent's processes to end")
            assert "pid" not in recorded.state
        finally:
            held.set()
            await asyncio.wait([starting])
            await be.destroy(handle)

    with tempfile.TemporaryDirectory(prefix="cove-stopstart-") as tmp:
        be = LocalBackend(Path(tmp))
        if be.cgroup_version is None:
            pytest.skip("no cgroups here: a sandbox's processes are found by its cgroups")

        async def run() -> None:
            try:
                await scenario(be)
            finally:
                await be.close()

        asyncio.run(run())
