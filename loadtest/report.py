"""Writing one generated section of RELIABILITY.md without touching the others."""

from __future__ import annotations

import re
from pathlib import Path


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
