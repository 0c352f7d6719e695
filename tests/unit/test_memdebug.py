"""COVE_DEBUG_TRACEMALLOC: the first SIGUSR2 starts tracing, each later one writes a snapshot."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

SCRIPT = r"""
import os, signal, sys, tracemalloc
from pathlib import Path
from cove.server import memdebug

memdebug.install(Path(sys.argv[1]))
assert not tracemalloc.is_tracing()
os.kill(os.getpid(), signal.SIGUSR2)  # handlers run before the next bytecode
assert tracemalloc.is_tracing()
kept = [bytearray(1000) for _ in range(100)]  # traced: in the snapshot
os.kill(os.getpid(), signal.SIGUSR2)
os.kill(os.getpid(), signal.SIGUSR2)
print(len(kept))
"""


def test_snapshots_on_sigusr2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "snapshot-1.tracemalloc",
        "snapshot-2.tracemalloc",
    ]
    snapshot = tracemalloc.Snapshot.load(str(tmp_path / "snapshot-1.tracemalloc"))
    kept = [s for s in snapshot.statistics("lineno") if s.traceback[0].filename == "<string>"]
    assert any(s.size >= 100 * 1000 for s in kept), kept
