"""`make soak` for one minute, so that it keeps working between long runs.

The same program as the 30-minute soak (`loadtest/soak.py`), with its own
server: every kind of work must run at least once without an error, and
nothing of the server may be left on the host afterwards. The memory slope
is printed but not judged here: one minute is mostly warm-up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.soak import PERIODS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # a minute of work, plus the first image build of a fresh data dir
def test_a_one_minute_soak_has_no_errors_and_leaves_nothing(tmp_path: Path) -> None:
    report = tmp_path / "soak.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    env.setdefault("COVE_IMAGE_BASE_CACHE", "/var/tmp/cove-test-image-bases")
    args = ["--minutes", "1", "--sample", "5", "--report", str(report), "--reliability", ""]
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.soak", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    text = report.read_text() if report.exists() else done.stdout + done.stderr[-3000:]
    print(text)
    assert "errors: **0**" in text, text
    assert "server tracebacks: 0" in text, text
    assert "Left behind after the server stopped: **0**" in text, text
    for kind in PERIODS:  # each kind ran, and completed at least once
        row = re.search(rf"^\| {kind} \| [\d.]+ \| (\d+) \|", text, re.M)
        assert row and int(row.group(1)) >= 1, f"{kind} never completed:\n{text}"
    # The slope is not judged on a minute, but a failing exit must be one of the above.
    assert done.returncode == 0 or "UPWARD" in text, done.stderr[-3000:]
