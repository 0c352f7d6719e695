"""Snapshot records: a named image with Daytona's snapshot fields, one JSON file each.

A snapshot's name is also a tag in the image store (the image a sandbox
created with `snapshot=NAME` runs on). Names are global to the server, as
image tags are; each record keeps the owner (the API key's hash) that
created it, and only that owner lists, reads or deletes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cove.wire.errors import Conflict, NotFound
from cove.wire.model import WireModel


@dataclass
class SnapshotRecord(WireModel):
    id: str
    owner: str
    name: str
    state: str  # Daytona's: building, active, inactive, build_failed, error
    image_id: str | None = None
    image_name: str | None = None  # the reference it was made from, if one
    entrypoint: list[str] | None = None
    cpu: int = 1
    mem: int = 1
    disk: int = 3
    size_bytes: int | None = None
    error_reason: str | None = None
    source_sandbox_id: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    last_used_at: float | None = None


class SnapshotRepo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sid: str) -> Path:
        return self.root / f"{sid}.json"

    def all(self) -> list[SnapshotRecord]:
        out = []
        for path in sorted(self.root.glob("*.json")):
            with contextlib.suppress(FileNotFoundError):
                out.append(SnapshotRecord.from_wire(json.loads(path.read_text()), "snapshot"))
        return sorted(out, key=lambda s: s.created_at)

    def by_name(self, name: str) -> SnapshotRecord | None:
        return next((s for s in self.all() if s.name == name), None)

    def get(self, owner: str, id_or_name: str) -> SnapshotRecord:
        for s in self.all():
            if s.owner == owner and id_or_name in (s.id, s.name):
                return s
        raise NotFound(f"snapshot {id_or_name!r} not found")

    def insert(self, record: SnapshotRecord) -> None:
        if self.by_name(record.name) is not None:
            raise Conflict(f"a snapshot named {record.name!r} already exists")
        self.save(record)

    def save(self, record: SnapshotRecord) -> None:
        record.updated_at = time.time()
        path = self._path(record.id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record.to_wire()))
        tmp.rename(path)

    def delete(self, record: SnapshotRecord) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(record.id).unlink()
