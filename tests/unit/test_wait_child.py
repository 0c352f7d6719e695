"""Waiting for a child holds no thread (the server hung when watchers of live
sandboxes filled the default executor with blocked `Popen.wait` calls)."""

from __future__ import annotations

import asyncio
import subprocess
from concurrent.futures import ThreadPoolExecutor

from cove.runtime.local.procs import wait_child


def test_waiting_for_many_children_leaves_the_executor_free() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
        children = [subprocess.Popen(["sleep", "30"]) for _ in range(8)]
        waits = [asyncio.ensure_future(wait_child(c)) for c in children]
        try:
            # With thread-blocking waits this would queue behind eight sleeps.
            assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 10) == 42
            assert not any(w.done() for w in waits)
        finally:
            for c in children:
                c.kill()
        return await asyncio.wait_for(asyncio.gather(*waits), 10)

    assert asyncio.run(main()) == [-9] * 8


def test_a_child_that_already_exited_is_reaped_at_once() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    child.wait()
    assert asyncio.run(asyncio.wait_for(wait_child(child), 5)) == 3
    fresh = subprocess.Popen(["sh", "-c", "exit 4"])
    assert asyncio.run(asyncio.wait_for(wait_child(fresh), 10)) == 4
