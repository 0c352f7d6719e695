"""Sandbox disks under a burst: every create gets a loop device, however many race for one.

The kernel offers every caller the same lowest free loop device and only one
gets it. The proof run of make test with make bench beside it failed a bench
create with "no free loop device after 64 tries": a server's own threads lost
to each other. Here several processes (servers) with many threads each
(concurrent creates) attach and release devices as fast as they can; with
64 retries and no turn-taking about 2% of them failed on this host.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from cove.runtime.local import disk

pytestmark = pytest.mark.skipif(
    disk.available() is not None, reason=f"loop devices unavailable: {disk.available()}"
)

PROCESSES, THREADS, ROUNDS = 4, 16, 20


def _attach_and_release(args: tuple[str, int, int]) -> list[str]:
    """In one process: `threads` threads attaching a loop device `rounds` times each."""
    where, threads, rounds = args
    image = Path(where) / f"image-{os.getpid()}"
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    failed: list[str] = []

    def one(_: int) -> None:
        for _ in range(rounds):
            try:
                dev, fd = disk._attach(image)
            except OSError as exc:
                failed.append(str(exc))
                continue
            assert dev.startswith("/dev/loop")
            os.close(fd)  # autoclear: the device is free again

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(threads)))
    return failed


def test_many_processes_and_threads_racing_for_loop_devices_all_get_one() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="cove-loops-") as where,
        get_context("spawn").Pool(PROCESSES) as pool,
    ):
        runs = pool.map(_attach_and_release, [(where, THREADS, ROUNDS)] * PROCESSES)
    failed = [f for run in runs for f in run]
    assert not failed, f"{len(failed)} of {PROCESSES * THREADS * ROUNDS} attaches: {failed[:3]}"
