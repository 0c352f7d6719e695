"""Where a sandbox start spends its time: one line per start, for `make bench`.

Off unless `COVE_PHASE_LOG=1` is in the control plane's environment: the
bench turns it on for its own servers and writes the breakdown of the cold
path from these lines (bench/cases/breakdown.py). A line goes to stderr as
`cove-phases {"what": "start", "ms": {"image": 0.1, ...}}`, the phases in
the order they ran; nothing is kept in memory.
"""

from __future__ import annotations

import json
import os
import sys
import time

ENV = "COVE_PHASE_LOG"
PREFIX = "cove-phases "


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


class Phases:
    """Milliseconds per named step, each step ending when the next is marked."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.on = enabled()
        self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def mark(self, name: str) -> None:
        if not self.on:
            return
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self.last) * 1000
        self.last = now

    def emit(self) -> None:
        if self.on:
            line = json.dumps({"what": self.what, "ms": self.ms})
            print(PREFIX + line, file=sys.stderr, flush=True)


def parse(lines: list[str], what: str) -> list[dict[str, float]]:
    """The phase records of kind `what` among a server's output lines."""
    out = []
    for line in lines:
        i = line.find(PREFIX)
        if i >= 0:
            rec = json.loads(line[i + len(PREFIX) :])
            if rec.get("what") == what:
                out.append(rec["ms"])
    return out
