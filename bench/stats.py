"""Summaries of timing samples: median, p95, p99 and n, and rows of the report."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Summary:
    n: int
    median: float
    p95: float
    p99: float
    unit: str

    @classmethod
    def of(cls, samples: list[float], unit: str) -> Summary:
        return cls(
            len(samples),
            percentile(samples, 0.5),
            percentile(samples, 0.95),
            percentile(samples, 0.99),
            unit,
        )

    def cell(self) -> str:
        if self.n == 1:
            return f"{_fmt(self.median)} {self.unit} (n=1)"
        return f"{_fmt(self.median)} / {_fmt(self.p95)} / {_fmt(self.p99)} {self.unit} (n={self.n})"


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


@dataclass
class Row:
    """One line of the report: Cove's figure, its same-run baseline, the target."""

    key: str
    title: str
    cove: Summary | None
    baseline: Summary | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    # A breakdown table of its own instead of the main table (see report.markdown).
    section: str = ""
    # Raw samples for the plots (not printed).
    samples: list[float] = field(default_factory=list, repr=False)
    baseline_samples: list[float] = field(default_factory=list, repr=False)

    @property
    def ratio(self) -> float | None:
        if self.cove is None or self.baseline is None or not self.baseline.median:
            return None
        return self.cove.median / self.baseline.median

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def not_measured(key: str, title: str, target: str, why: str) -> Row:
    return Row(key, title, None, target=target, note=f"not measured: {why}")


@contextmanager
def stopwatch(into: list[float], scale: float = 1000.0) -> Iterator[None]:
    """Append the elapsed time of the block (ms by default) to `into`."""
    t0 = time.perf_counter()
    yield
    into.append((time.perf_counter() - t0) * scale)


def timed(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    """Milliseconds per call of `fn`, after a few untimed warm-up calls."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    for _ in range(runs):
        with stopwatch(out):
            fn()
    return out
