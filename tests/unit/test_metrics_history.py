"""A sandbox's metrics history on disk: bounded, read by time range, dropped."""

from __future__ import annotations

from pathlib import Path

from cove.server.metrics import MetricsHistory, iso
from cove.wire.protocol import SystemMetrics


def _sample(t: float) -> SystemMetrics:
    return SystemMetrics(1, 5.0, 1 << 30, 1 << 20, 0, 3 << 30, 0, 3 << 30, iso(t), int(t))


def test_history_stays_bounded_and_keeps_the_newest(tmp_path: Path) -> None:
    history = MetricsHistory(tmp_path, keep=10)
    for i in range(35):
        history.append("sb", _sample(1000.0 + i), 1000.0 + i)
        lines = (tmp_path / "sb.jsonl").read_text().splitlines()
        assert len(lines) <= 20  # never more than twice `keep`
    got = history.read("sb", 0, 1e12)
    assert 10 <= len(got) <= 20
    assert got[-1].timestamp_unix == 1034
    assert [s.timestamp_unix for s in got] == sorted(s.timestamp_unix for s in got)


def test_range_read_drop_and_unknown_files(tmp_path: Path) -> None:
    history = MetricsHistory(tmp_path, keep=100)
    for i in range(10):
        history.append("a", _sample(2000.0 + i * 0.5), 2000.0 + i * 0.5)
    history.append("b", _sample(2000.0), 2000.0)
    inside = history.read("a", 2001.0, 2002.0)
    assert [s.timestamp for s in inside] == [iso(2001.0), iso(2001.5), iso(2002.0)]
    # A torn last line (a crash mid-append) is skipped, not an error.
    with open(tmp_path / "a.jsonl", "a") as f:
        f.write('{"t": 3000')
    assert len(history.read("a", 0, 1e12)) == 10
    history.drop("a")
    assert not (tmp_path / "a.jsonl").exists()
    assert history.read("a", 0, 1e12) == []
    history.drop_unknown({"a"})
    assert not (tmp_path / "b.jsonl").exists()
