"""The cold-start phase records the bench reads (`COVE_PHASE_LOG=1`)."""

from __future__ import annotations

import pytest

from cove.runtime.local.phases import Phases, parse


def test_off_by_default_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    p = Phases("start")
    p.mark("a")
    p.emit()
    assert capsys.readouterr().err == ""


def test_a_record_lists_the_phases_in_order_and_parses_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COVE_PHASE_LOG", "1")
    p = Phases("start")
    for name in ("image", "cgroups", "image"):
        p.mark(name)
    p.emit()
    lines = ["unrelated line\n", *capsys.readouterr().err.splitlines(keepends=True)]
    (record,) = parse(lines, "start")
    assert list(record) == ["image", "cgroups"]  # a phase marked twice adds up
    assert all(v >= 0 for v in record.values())
    assert parse(lines, "other") == []
