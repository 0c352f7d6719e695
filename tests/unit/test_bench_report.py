"""bench/REPORT.md and README's figures are written from one run's rows only:
hand-written notes are linked, never copied, and README's block is replaced
with figures of that run and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.stats import Row, Summary


def _rows() -> list[Row]:
    return [
        Row("tti_cold", "TTI cold", Summary.of([90.0, 100.0, 110.0], "ms")),
        Row(
            "exec",
            "Exec round trip",
            Summary.of([5.0, 6.0, 7.0], "ms"),
            Summary.of([0.5, 0.6, 0.7], "ms"),
            "host true",
            "p50 <= 5 ms",
            False,
        ),
        Row(
            "code_run",
            "code_run",
            Summary.of([10.0, 11.0, 12.0], "ms"),
            Summary.of([9.0, 10.0, 11.0], "ms"),
            "host python3",
        ),
        Row("stream", "stream", None, note="not measured: the run failed: boom"),
    ]


def test_the_report_links_hand_written_notes_and_copies_none() -> None:
    text = report.markdown(_rows(), "python -m bench", 1.0, [], "quiet")
    assert "| 2 | Exec round trip | 6.00 / 6.90 / 6.98 ms (n=3) |" in text
    assert "**missed**" in text and "not measured: the run failed: boom" in text
    notes = sorted(report.HERE.glob("notes-*.md"))
    assert notes, "the dated hand-written notes are in bench/"
    for path in notes:
        assert f"- [{path.name}]({path.name})" in text
        headings = [line for line in path.read_text().splitlines() if line.startswith("## ")]
        assert headings and not any(h in text for h in headings)  # linked, not pasted


def test_readme_figures_are_this_runs_medians_only(tmp_path: Path) -> None:
    figures = report.readme_figures(_rows(), "2026-12-02")
    assert "create to first exec 100 ms cold;" in figures
    assert "exec round trip 6.00 ms;" in figures
    assert "`code_run` of `print(1)` 11.0 ms (host `python3 -c`: 10.0 ms)" in figures
    assert "warm pool" not in figures and "stream" not in figures  # not measured here
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{report.README_BEGIN}\nold 95 ms\n{report.README_END}\nafter\n")
    report.write_readme(figures, readme)
    assert readme.read_text() == (
        f"before\n{report.README_BEGIN}\n{figures}\n{report.README_END}\nafter\n"
    )
    readme.write_text("no block\n")
    with pytest.raises(SystemExit, match="no <!-- bench:begin -->"):
        report.write_readme(figures, readme)


def test_the_repository_readme_has_the_block_make_bench_fills() -> None:
    text = report.README.read_text()
    assert text.count(report.README_BEGIN) == 1 and text.count(report.README_END) == 1


def test_breakdown_rows_get_a_table_of_their_own_after_the_main_one() -> None:
    step = Row(
        "bd_cold_spawn",
        "spawn",
        Summary.of([3.0, 4.0, 5.0], "ms"),
        note="phase record",
        section="Where the time goes: cold start",
    )
    text = report.markdown([*_rows(), step], "python -m bench", 1.0, [], "quiet")
    main, _, rest = text.partition("## Where the time goes: cold start")
    assert "spawn" not in main.split("Notes:")[0]  # not a numbered row of the main table
    assert "| spawn | 4.00 / 4.90 / 4.98 ms (n=3) | phase record |" in rest
