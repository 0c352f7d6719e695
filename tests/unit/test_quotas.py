"""Quota arithmetic on a real store: what counts, and the override file's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove.server.quotas import Limits, Quotas, load_overrides
from cove.server.records import RecordSpec, SandboxRecord, SandboxState
from cove.server.store import Store
from cove.settings import Settings
from cove.wire.errors import QuotaExceeded


def _spec(cpu: int = 1, memory: int = 1, disk: int = 1) -> RecordSpec:
    return RecordSpec(env={}, labels={}, cpu=cpu, memory=memory, disk=disk, language="python")


def _add(store: Store, sid: str, state: SandboxState, spec: RecordSpec) -> SandboxRecord:
    r = SandboxRecord(sid, "owner", sid, state, spec, "local")
    store.insert(r)
    return r


def test_stopped_sandboxes_hold_disk_but_no_cpu_or_memory(tmp_path: Path) -> None:
    store = Store(tmp_path / "cove.db")
    settings = Settings(quota_sandboxes=0, quota_cpu=2, quota_memory_gib=0, quota_disk_gib=3)
    quotas = Quotas(store, settings)
    stopped = _add(store, "a", SandboxState.STOPPED, _spec(cpu=2, disk=2))
    quotas.check("owner", _spec(cpu=2, disk=1))  # CPU: the stopped one holds none
    with pytest.raises(QuotaExceeded, match="COVE_QUOTA_DISK_GIB allows 3 GiB of disk"):
        quotas.check("owner", _spec(disk=2))
    # Starting it again counts its CPUs, but not itself twice.
    _add(store, "b", SandboxState.STARTED, _spec(cpu=1, disk=1))
    with pytest.raises(QuotaExceeded, match="uses 1 in sandboxes not stopped"):
        quotas.check("owner", stopped.spec, stopped)
    quotas.check("other-owner", _spec(cpu=2, disk=3))  # another key's use is its own
    store.close()


def test_the_override_file_is_checked(tmp_path: Path) -> None:
    base = Limits(10, 10, 10, 10)
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"abc": {"cpu": 2}}))
    assert load_overrides(path, base) == {"abc": Limits(10, 2, 10, 10)}
    for bad in ({"abc": {"gpus": 1}}, {"abc": {"cpu": -1}}, ["abc"]):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="COVE_QUOTA_FILE"):
            load_overrides(path, base)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="COVE_QUOTA_FILE"):
        load_overrides(path, base)
