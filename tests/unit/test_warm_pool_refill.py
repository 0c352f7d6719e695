"""The warm pool never holds more than its size, however its refillers interleave.

The pool's own bookkeeping, with a pre-start that only makes a handle: what a
real start does is covered by tests/e2e/test_warm_pool.py, which first showed
a pool of 2 holding 3 (both refillers had seen it one short before waiting
out a cold start, then both started one).
"""

from __future__ import annotations

import asyncio

from cove.runtime.base import RuntimeHandle, SandboxSpec
from cove.runtime.warmpool import WarmPool


def test_refillers_waiting_out_a_cold_start_fill_only_the_gap() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        started: list[str] = []

        async def prestart(spec: SandboxSpec) -> RuntimeHandle:
            started.append(spec.id)
            await asyncio.sleep(0)  # a real start yields to the loop
            return RuntimeHandle(spec.id, "local")

        async def discard(handle: RuntimeHandle) -> None:
            raise AssertionError(f"nothing should be discarded ({handle.sandbox_id})")

        pool = WarmPool(2, prestart, discard)
        spec = SandboxSpec(id="first")
        assert pool.take(spec) is None  # learns the shape, fills behind
        await asyncio.wait_for(asyncio.gather(*pool._refillers), 10)
        assert len(pool.ready()) == 2
        # A take during a cold start: both refillers see the pool one short,
        # and both wait for the cold start to end.
        async with pool.foreground():
            assert pool.take(SandboxSpec(id="second")) is not None
            assert len(pool._refillers) == 2
            await asyncio.sleep(0)  # both reach their wait
        await asyncio.wait_for(asyncio.gather(*pool._refillers), 10)
        return pool.ready(), started

    ready, started = asyncio.run(scenario())
    assert len(ready) == 2, f"a pool of 2 holds {len(ready)}"
    assert len(started) == 3  # two to fill it, one to refill behind the take
