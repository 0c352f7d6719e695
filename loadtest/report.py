"""Writing one generated section of RELIABILITY.md without touching the others,
and saying which machine the figures came from."""

from __future__ import annotations

import os
import re
from pathlib import Path


def machine() -> str:
    """Cores, memory and load of this host now (figures depend on all three)."""
    mem = "memory unknown"
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        mem = f"{kib / (1 << 20):.1f} GiB of memory"
    except (OSError, StopIteration, ValueError):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {mem}, load average {load} at the start"


def write_section(path: Path, key: str, title: str, body: str) -> None:
    """Replace (or append) the block between this key's markers."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    block = f"{begin}\n## {title}\n\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Reliability\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
