"""A test past its timeout fails alone, named, and the run goes on (tests/timeouts.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_an_overrun_fails_only_that_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.timeouts import pytest_timeout_set_timer  # noqa: F401\n"
    )
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent("""
        import threading
        import pytest

        @pytest.mark.timeout(1)
        def test_stuck():
            threading.Event().wait()  # blocks for ever, as a hung test does

        def test_after():
            pass
        """)
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=60",
            "-o",
            "timeout_method=thread",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    out = done.stdout + done.stderr
    assert "1 failed, 1 passed" in out, out
    assert "test_sample.py::test_stuck ran past its 1 s timeout" in out, out
