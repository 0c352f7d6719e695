"""Installed size of a package with its dependencies, from the venv's metadata.

Usage: .venv/bin/python tests/sdk/measure_size.py cove daytona

Walks each package's non-optional requirements and adds up the files every
distribution installed. An editable install (cove here) lists no source
files, so its package directory is measured instead.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def closure(name: str, seen: dict[str, metadata.Distribution]) -> None:
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return
    seen[key] = dist
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        match = re.match(r"[A-Za-z0-9_.\-]+", req)
        if match:
            closure(match.group(0), seen)


def installed_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if path.is_file():  # .pyc files included: pip compiles them at install
            total += path.stat().st_size
    return total


def editable_source_bytes(name: str) -> int:
    module = __import__(name)
    root = Path(module.__file__ or "").parent
    if "site-packages" in root.parts:
        return 0  # a normal install: already counted from its file list
    return sum(p.stat().st_size for p in root.rglob("*.py"))


def main() -> None:
    for name in sys.argv[1:]:
        seen: dict[str, metadata.Distribution] = {}
        closure(name, seen)
        total = sum(installed_bytes(d) for d in seen.values()) + editable_source_bytes(name)
        print(f"{name}: {len(seen)} distributions, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
