"""A sandbox's cgroup limits as the host set them, read on cgroup v1 or v2.

Tests that depend on the cgroup version take `version` from `VERSIONS` and
skip the version this host does not run, saying why (which controllers are
missing where), so a v2 host runs the v2 branch and a v1 host says that it
did not. RELIABILITY.md lists the v2 paths that no test exercised here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from cove.runtime.local import cgroups

HOST = cgroups.detect()  # what the server on this machine uses
ROOT = Path(cgroups.ROOT)
NEEDED = ("memory", "pids", "cpu")
VERSIONS = ["v1", "v2"]


def _v2_mounts() -> dict[str, set[str]]:
    found = {}
    with open("/proc/mounts") as f:
        for line in f:
            _, where, kind, *_ = line.split()
            if kind == "cgroup2":
                try:
                    found[where] = set((Path(where) / "cgroup.controllers").read_text().split())
                except OSError:
                    found[where] = set()
    return found


def why_not(version: str) -> str | None:
    """None when this host's sandboxes use `version`, else a reason naming what is missing."""
    if version == HOST:
        return None
    if version == "v2":
        mounts = _v2_mounts()
        if not mounts:
            return "cgroup v2 branch not run: no cgroup2 filesystem is mounted"
        said = "; ".join(
            f"{where} has controllers {sorted(ctrls) or 'none'}, lacks "
            f"{', '.join(c for c in NEEDED if c not in ctrls)}"
            for where, ctrls in mounts.items()
        )
        return f"cgroup v2 branch not run (this host's sandboxes use {HOST}): {said}"
    return f"cgroup v1 branch not run: this host's sandboxes use {HOST or 'no cgroups'}"


def skip_unless_host_runs(version: str) -> None:
    reason = why_not(version)
    if reason:
        pytest.skip(reason)


@dataclass
class Limits:
    cpus: float
    memory_bytes: int  # the user code's cgroup
    pids: int  # the user code's cgroup


def find_dirs(top: Path, sid: str, *, want: str | None = None) -> list[Path]:
    """Directories named `sid` under `top` (with `want` inside, if given).

    A walk, not `Path.glob`: other sandboxes' cgroups come and go while it
    runs (on a busy host, other test runs' too), and glob fails on a directory
    that vanishes mid-scan where os.walk skips it.
    """
    found = []
    for parent, dirs, _ in os.walk(top):
        if sid in dirs:
            path = Path(parent) / sid
            if want is None or (path / want).exists():
                found.append(path)
            dirs.remove(sid)
    return found


def limits(sid: str) -> Limits:
    """The limits on sandbox `sid`'s user code, read from the host's cgroup files."""
    if HOST == "v1":
        (cpu,) = find_dirs(ROOT / "cpu", sid)
        (memory,) = (p / "user" for p in find_dirs(ROOT / "memory", sid, want="user"))
        (pids,) = (p / "user" for p in find_dirs(ROOT / "pids", sid, want="user"))
        quota = int((cpu / "cpu.cfs_quota_us").read_text())
        period = int((cpu / "cpu.cfs_period_us").read_text())
        return Limits(
            quota / period,
            int((memory / "memory.limit_in_bytes").read_text()),
            int((pids / "pids.max").read_text()),
        )
    if HOST == "v2":
        (base,) = find_dirs(ROOT, sid, want="cpu.max")
        quota_text, period_text = (base / "cpu.max").read_text().split()
        return Limits(
            int(quota_text) / int(period_text),
            int((base / "user" / "memory.max").read_text()),
            int((base / "user" / "pids.max").read_text()),
        )
    raise LookupError("no cgroups on this host: limits are not enforced")
