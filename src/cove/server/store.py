"""Sandbox records and API-key hashes in SQL (SQLite file by default).

The only module that speaks SQL. Calls are synchronous: each is one small
indexed statement on a local file in WAL mode (tens of microseconds), cheaper
than a hop to a thread. What a record holds is typed in `records`; a record's
spec is stored as its JSON wire form, its state as the enum's value.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cove.server.records import RecordSpec, SandboxRecord, SandboxState, SshGrant

SCHEMA = """
CREATE TABLE IF NOT EXISTS sandboxes (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    error_reason TEXT,
    spec TEXT NOT NULL,
    backend TEXT NOT NULL,
    runtime TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_activity_at REAL NOT NULL,
    UNIQUE (owner, name)
);
-- Each sandbox's labels again, one row per label, indexed by (key, value):
-- a list filtered on labels reads only the matching rows, not every record.
-- The record's spec JSON stays the source a sandbox is rendered from.
CREATE TABLE IF NOT EXISTS sandbox_labels (
    sandbox_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (sandbox_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sandbox_labels_by_value ON sandbox_labels (key, value, sandbox_id);
-- Written at start from the configured keys, read by no code path: it lets an
-- operator map a record's owner (a key hash) to a configured key's label.
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
# Signed preview URLs (`create_signed_preview_url`): the token is the URL's
# credential, bound to one sandbox port until it expires or is expired. Only
# its hash is kept, like API keys and SSH tokens: a copy of the store opens
# nothing. (`signed_previews`, which held tokens in clear, is migrated.)
SIGNED_SCHEMA = """
CREATE TABLE IF NOT EXISTS signed_preview_hashes (
    token_hash TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    port INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signed_preview_hashes_sandbox
    ON signed_preview_hashes (sandbox_id);
"""
# SSH access tokens (see `sshaccess`): only a hash of each token is kept.
SSH_SCHEMA = """
CREATE TABLE IF NOT EXISTS ssh_access (
    token_hash TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ssh_access_sandbox ON ssh_access (sandbox_id);
"""
# Dashboard sessions (see `dashboard.sessions`): the cookie's id only as a hash,
# so a copy of the database signs no one in; the CSRF token is worthless without it.
DASHBOARD_SCHEMA = """
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    id_hash TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dashboard_sessions_expiry ON dashboard_sessions (expires_at);
"""


def digest(secret: str) -> str:
    """What the store keeps of a bearer token: its SHA-256 (tokens are random, no salt needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        fresh_labels = not self._has_table("sandbox_labels")
        self.db.executescript(SCHEMA)
        if fresh_labels:
            self._backfill_labels()
        self.db.executescript(SSH_SCHEMA)
        self.db.executescript(DASHBOARD_SCHEMA)
        self.db.executescript(SIGNED_SCHEMA)
        if self._has_table("signed_previews"):
            self._hash_signed_previews()
        path.chmod(0o600)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction (the connection autocommits each statement otherwise)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _has_table(self, name: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    def _hash_signed_previews(self) -> None:
        """Move a store's clear-text signed preview tokens to the hashed table."""
        rows = self.db.execute(
            "SELECT token, sandbox_id, port, expires_at FROM signed_previews"
        ).fetchall()
        with self._tx():
            self.db.executemany(
                "INSERT OR IGNORE INTO signed_preview_hashes VALUES (?,?,?,?)",
                [(digest(t), sid, port, exp) for t, sid, port, exp in rows],
            )
            self.db.execute("DROP TABLE signed_previews")
        self.db.execute("VACUUM")  # the dropped pages held the tokens: gone from the file too

    def _backfill_labels(self) -> None:
        """Index the labels of records written before the label table existed."""
        rows = self.db.execute("SELECT id, spec FROM sandboxes").fetchall()
        with self._tx():
            for sid, spec in rows:
                self._write_labels(sid, json.loads(spec).get("labels") or {})

    def _write_labels(self, sandbox_id: str, labels: dict[str, str]) -> None:
        self.db.execute("DELETE FROM sandbox_labels WHERE sandbox_id=?", (sandbox_id,))
        self.db.executemany(
            "INSERT INTO sandbox_labels (sandbox_id, key, value) VALUES (?,?,?)",
            [(sandbox_id, k, v) for k, v in labels.items()],
        )

    def close(self) -> None:
        self.db.close()

    # -- sandboxes -----------------------------------------------------------

    @staticmethod
    def _row(row: sqlite3.Row | tuple[Any, ...]) -> SandboxRecord:
        (id_, owner, name, state, reason, spec, backend, runtime, created, updated, active) = row
        return SandboxRecord(
            id_, owner, name, SandboxState(state), RecordSpec.from_wire(json.loads(spec), "spec"),
            backend, json.loads(runtime), reason, created, updated, active,
        )  # fmt: skip

    _COLUMNS = (
        "id, owner, name, state, error_reason, spec, backend, runtime, "
        "created_at, updated_at, last_activity_at"
    )

    def insert(self, r: SandboxRecord) -> None:
        try:
            with self._tx():
                self._insert(r)
        except sqlite3.IntegrityError as exc:
            raise NameTaken(r.name) from exc

    def _insert(self, r: SandboxRecord) -> None:
        self.db.execute(
            f"INSERT INTO sandboxes ({self._COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                r.id, r.owner, r.name, r.state.value, r.error_reason,
                json.dumps(r.spec.to_wire()),
                r.backend, json.dumps(r.runtime), r.created_at, r.updated_at,
                r.last_activity_at,
            ),
        )  # fmt: skip
        self._write_labels(r.id, r.spec.labels)

    def save(self, r: SandboxRecord) -> None:
        r.updated_at = time.time()
        # The spec JSON is written whole, so its labels are indexed again with
        # it: the index never disagrees with the record it is read back from.
        with self._tx():
            self._update(r)
            self._write_labels(r.id, r.spec.labels)

    def save_spec(self, r: SandboxRecord) -> None:
        """Store a changed spec (labels included) without touching `updated_at`.

        `updated_at` times auto-delete from the last state change, so a label or
        interval change on a stopped sandbox must not postpone it.
        """
        with self._tx():
            self._update(r)
            self._write_labels(r.id, r.spec.labels)

    def _update(self, r: SandboxRecord) -> None:
        self.db.execute(
            "UPDATE sandboxes SET state=?, error_reason=?, spec=?, runtime=?, updated_at=?, "
            "last_activity_at=? WHERE id=?",
            (
                r.state.value, r.error_reason, json.dumps(r.spec.to_wire()), json.dumps(r.runtime),
                r.updated_at, r.last_activity_at, r.id,
            ),
        )  # fmt: skip

    def touch(self, sandbox_id: str, when: float) -> None:
        self.db.execute("UPDATE sandboxes SET last_activity_at=? WHERE id=?", (when, sandbox_id))

    def delete(self, sandbox_id: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM sandboxes WHERE id=?", (sandbox_id,))
            self.db.execute("DELETE FROM sandbox_labels WHERE sandbox_id=?", (sandbox_id,))
            self.db.execute("DELETE FROM signed_preview_hashes WHERE sandbox_id=?", (sandbox_id,))

    def get(self, owner: str, id_or_name: str) -> SandboxRecord | None:
        row = self.db.execute(
            f"SELECT {self._COLUMNS} FROM sandboxes WHERE owner=? AND (id=? OR name=?) "
            "ORDER BY id=? DESC LIMIT 1",
            (owner, id_or_name, id_or_name, id_or_name),
        ).fetchone()
        return self._row(row) if row else None

    def reach(
        self, owner: str, sandbox_id: str
    ) -> tuple[SandboxState, str | None, str, Any] | None:
        """State, error reason, backend and runtime state of `owner`'s sandbox `sandbox_id`.

        What a toolbox call needs to find the agent, by primary key, without
        the name match and the spec's JSON that `get` pays for: every exec,
        file and session call of every client goes through here.
        """
        row = self.db.execute(
            "SELECT state, error_reason, backend, runtime FROM sandboxes WHERE id=? AND owner=?",
            (sandbox_id, owner),
        ).fetchone()
        if row is None:
            return None
        state, reason, backend, runtime = row
        return SandboxState(state), reason, backend, json.loads(runtime)

    def get_any(self, sandbox_id: str) -> SandboxRecord | None:
        row = self.db.execute(
            f"SELECT {self._COLUMNS} FROM sandboxes WHERE id=?", (sandbox_id,)
        ).fetchone()
        return self._row(row) if row else None

    def list(self, owner: str | None = None) -> list[SandboxRecord]:
        if owner is None:
            rows = self.db.execute(f"SELECT {self._COLUMNS} FROM sandboxes ORDER BY created_at")
        else:
            rows = self.db.execute(
                f"SELECT {self._COLUMNS} FROM sandboxes WHERE owner=? ORDER BY created_at",
                (owner,),
            )
        return [self._row(r) for r in rows.fetchall()]

    def count_by_state(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) FROM sandboxes GROUP BY state")
        return {state: count for state, count in rows.fetchall()}

    def list_labelled(self, owner: str, labels: dict[str, str]) -> builtins.list[SandboxRecord]:
        """An owner's sandboxes carrying every one of `labels`, through the label index.

        One join per label, each an index lookup on (key, value); the sandbox
        rows are then read by primary key.
        """
        if not labels:
            return self.list(owner)
        joins = "".join(
            f" JOIN sandbox_labels l{i} ON l{i}.sandbox_id = s.id AND l{i}.key=? AND l{i}.value=?"
            for i in range(len(labels))
        )
        params: list[str] = [x for kv in labels.items() for x in kv]
        cols = ", ".join(f"s.{c.strip()}" for c in self._COLUMNS.split(","))
        rows = self.db.execute(
            f"SELECT {cols} FROM sandboxes s{joins} WHERE s.owner=? ORDER BY s.created_at",
            (*params, owner),
        )
        return [self._row(r) for r in rows.fetchall()]

    # -- API keys ------------------------------------------------------------

    def add_key_hash(self, key_hash: str, label: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO api_keys (hash, label, created_at) VALUES (?,?,?)",
            (key_hash, label, time.time()),
        )

    # -- signed preview URLs ---------------------------------------------------

    def key_label(self, key_hash: str) -> str | None:
        row = self.db.execute("SELECT label FROM api_keys WHERE hash=?", (key_hash,)).fetchone()
        return row[0] if row else None

    def add_signed_preview(self, token: str, sandbox_id: str, port: int, expires_at: float) -> None:
        # Expired ones are dropped here, so the table holds only live URLs.
        self.db.execute("DELETE FROM signed_preview_hashes WHERE expires_at<?", (time.time(),))
        self.db.execute(
            "INSERT INTO signed_preview_hashes (token_hash, sandbox_id, port, expires_at) "
            "VALUES (?,?,?,?)",
            (digest(token), sandbox_id, port, expires_at),
        )

    def signed_preview(self, token: str) -> tuple[str, int, float] | None:
        """(sandbox id, port, expiry) of a signed preview token."""
        row = self.db.execute(
            "SELECT sandbox_id, port, expires_at FROM signed_preview_hashes WHERE token_hash=?",
            (digest(token),),
        ).fetchone()
        return (str(row[0]), int(row[1]), float(row[2])) if row else None

    def expire_signed_preview(self, token: str, sandbox_id: str, port: int) -> bool:
        cur = self.db.execute(
            "DELETE FROM signed_preview_hashes WHERE token_hash=? AND sandbox_id=? AND port=?",
            (digest(token), sandbox_id, port),
        )
        return cur.rowcount > 0

    # -- SSH access ------------------------------------------------------------

    def add_ssh_access(self, grant: SshGrant) -> None:
        self.db.execute(
            "INSERT INTO ssh_access (token_hash, id, sandbox_id, created_at, expires_at) "
            "VALUES (?,?,?,?,?)",
            (grant.token_hash, grant.id, grant.sandbox_id, grant.created_at, grant.expires_at),
        )

    def get_ssh_access(self, token_hash: str) -> SshGrant | None:
        row = self.db.execute(
            "SELECT token_hash, id, sandbox_id, created_at, expires_at FROM ssh_access "
            "WHERE token_hash=?",
            (token_hash,),
        ).fetchone()
        return SshGrant(*row) if row else None

    def revoke_ssh_access(self, sandbox_id: str, token_hash: str | None) -> int:
        """Drop one token of a sandbox, or all of them (None); how many went."""
        if token_hash is None:
            cur = self.db.execute("DELETE FROM ssh_access WHERE sandbox_id=?", (sandbox_id,))
        else:
            cur = self.db.execute(
                "DELETE FROM ssh_access WHERE sandbox_id=? AND token_hash=?",
                (sandbox_id, token_hash),
            )
        return cur.rowcount

    def prune_ssh_access(self, now: float) -> None:
        """Forget expired tokens and those of sandboxes that are gone."""
        self.db.execute(
            "DELETE FROM ssh_access WHERE expires_at<=? "
            "OR sandbox_id NOT IN (SELECT id FROM sandboxes)",
            (now,),
        )

    # -- dashboard sessions ------------------------------------------------------

    def add_dashboard_session(
        self, id_hash: str, owner: str, csrf: str, expires_at: float, keep_at_most: int
    ) -> None:
        """Store one session; expired ones go, and the oldest past `keep_at_most`."""
        # Three statements, each committed: a sweep seen without the insert is harmless.
        now = time.time()
        self.db.execute("DELETE FROM dashboard_sessions WHERE expires_at<?", (now,))
        self.db.execute(
            "DELETE FROM dashboard_sessions WHERE id_hash IN (SELECT id_hash FROM "
            "dashboard_sessions ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
            (max(keep_at_most - 1, 0),),
        )
        self.db.execute(
            "INSERT INTO dashboard_sessions (id_hash, owner, csrf, created_at, expires_at) "
            "VALUES (?,?,?,?,?)",
            (id_hash, owner, csrf, now, expires_at),
        )

    def dashboard_session(self, id_hash: str) -> tuple[str, str, float] | None:
        """(owner, CSRF token, expiry) of a session id's hash."""
        row = self.db.execute(
            "SELECT owner, csrf, expires_at FROM dashboard_sessions WHERE id_hash=?", (id_hash,)
        ).fetchone()
        return (str(row[0]), str(row[1]), float(row[2])) if row else None

    def delete_dashboard_session(self, id_hash: str) -> None:
        self.db.execute("DELETE FROM dashboard_sessions WHERE id_hash=?", (id_hash,))


class NameTaken(Exception):
    """An insert whose (owner, name) another sandbox already has."""
