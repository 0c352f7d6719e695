"""A store written before tokens were hashed is migrated: the clear tokens leave the file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from cove.server.store import Store

OLD = """
CREATE TABLE signed_previews (
    token TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL,
    port INTEGER NOT NULL, expires_at REAL NOT NULL
);
"""


def test_clear_signed_preview_tokens_are_hashed_and_gone_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cove.db"
    token = "0123456789abcdef0123456789abcdef"
    old = sqlite3.connect(path)
    old.executescript(OLD)
    old.execute(
        "INSERT INTO signed_previews VALUES (?,?,?,?)", (token, "sb-1", 3000, time.time() + 60)
    )
    old.commit()
    old.close()
    store = Store(path)
    try:
        found = store.signed_preview(token)
        assert found is not None and found[:2] == ("sb-1", 3000)
        assert store.signed_preview("f" * 32) is None
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = b"".join(p.read_bytes() for p in tmp_path.glob("cove.db*"))
        assert token.encode() not in dump
        assert store.expire_signed_preview(token, "sb-1", 3000)
    finally:
        store.close()
