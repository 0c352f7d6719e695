"""A debugging aid: the server's Python allocations, snapshotted on demand.

With COVE_DEBUG_TRACEMALLOC=DIR the server's first SIGUSR2 starts tracing
its allocations (tracemalloc, a few frames each: it slows the server down,
so not from the start, whose staging it would make minutes long) and each
later one writes a snapshot to DIR/snapshot-N.tracemalloc. Two snapshots of
a long run, compared (`Snapshot.compare_to`), name the lines whose memory
grows (how the soak's RSS slope was looked into: RELIABILITY.md, Soak).
"""

from __future__ import annotations

import gc
import itertools
import logging
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

log = logging.getLogger("cove.server")
FRAMES = 8


def install(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count(1)

    def dump(signum: int, frame: FrameType | None) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
            log.warning("tracing allocations (tracemalloc)")
            return
        path = directory / f"snapshot-{next(numbers)}.tracemalloc"
        gc.collect()  # what is still referenced, not garbage in cycles awaiting a collection
        tracemalloc.take_snapshot().dump(str(path))
        log.warning("tracemalloc snapshot written to %s", path)

    signal.signal(signal.SIGUSR2, dump)
