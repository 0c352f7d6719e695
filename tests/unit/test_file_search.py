"""The agent's tree walks, run in process on a temporary tree: literal content
search with line numbers, name globs, and the time budget that bounds them."""

from __future__ import annotations

import os
from pathlib import Path

from cove.agent.files import search


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "x.py").write_text("one\nTODO(x) two\n")
    (root / "a" / "b" / "y.py").write_text("TODO(x)\n")
    (root / "a" / "bin.dat").write_bytes(b"TODO(x)\0")
    os.mkfifo(root / "a" / "fifo")  # never opened: it would block the walk


def test_find_is_literal_with_line_numbers(tmp_path: Path) -> None:
    make_tree(tmp_path)
    budget = search.Budget()
    got = [
        (Path(m.file).name, m.line, m.content)
        for m in search.find(str(tmp_path), "TODO(x)", budget)
    ]
    assert got == [("x.py", 2, "TODO(x) two"), ("y.py", 1, "TODO(x)")]  # a directory, then below
    assert not budget.truncated


def test_search_globs_names(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = search.search(str(tmp_path), "*.py", search.Budget())
    assert [Path(p).name for p in found] == ["x.py", "y.py"]


def test_a_spent_budget_stops_the_walk_and_says_so(tmp_path: Path) -> None:
    make_tree(tmp_path)
    budget = search.Budget(seconds=-1)
    assert search.find(str(tmp_path), "TODO", budget) == []
    assert budget.truncated
