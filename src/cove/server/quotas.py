"""Tenant quotas (per API key) and admission control (per host).

Quotas: each key may hold at most `sandboxes` sandboxes, whose disks add up
to at most `disk_gib`, and whose CPUs and memory add up to at most `cpu` and
`memory_gib` among those not stopped (a stopped sandbox holds no CPU or
memory; starting it again is checked). Past a limit: 429 naming the limit,
what the key uses and what was asked. Checks are synchronous and run right
before the record is written, so two concurrent creates cannot both slip
under the same limit (no await between check and insert).

Admission: the host itself must have room. Creates and starts are refused
with 503 while available memory or free disk where sandbox disks live is
below the configured floor, rather than starting sandboxes that then fail;
a single sandbox asking for more disk than the host has free is a 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from cove.runtime.base import HostRoom
from cove.server.records import RecordSpec, SandboxRecord, SandboxState
from cove.server.store import Store
from cove.settings import GiB, MiB, Settings
from cove.wire.errors import BadRequest, NoCapacity, QuotaExceeded

# States that hold no CPU or memory on a node.
IDLE = (SandboxState.STOPPED, SandboxState.BUILD_FAILED, SandboxState.ERROR)


@dataclass(frozen=True)
class Limits:
    """One key's limits; 0 means no limit."""

    sandboxes: int
    cpu: int
    memory_gib: int
    disk_gib: int

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(s.quota_sandboxes, s.quota_cpu, s.quota_memory_gib, s.quota_disk_gib)


# Names as they appear in messages and in the settings (what an operator changes).
SETTING = {
    "sandboxes": "COVE_QUOTA_SANDBOXES",
    "cpu": "COVE_QUOTA_CPU",
    "memory_gib": "COVE_QUOTA_MEMORY_GIB",
    "disk_gib": "COVE_QUOTA_DISK_GIB",
}
UNIT = {
    "sandboxes": "sandboxes",
    "cpu": "CPUs",
    "memory_gib": "GiB of memory",
    "disk_gib": "GiB of disk",
}


def load_overrides(path: Path | None, base: Limits) -> dict[str, Limits]:
    """The quota file: {"<key sha256 or key label>": {"sandboxes": 5, "cpu": 8, ...}}."""
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"COVE_QUOTA_FILE {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"COVE_QUOTA_FILE {path}: expected an object keyed by key hash or label")
    known = {f.name for f in fields(Limits)}
    out = {}
    for who, values in raw.items():
        if not isinstance(values, dict) or not set(values) <= known:
            raise ValueError(
                f"COVE_QUOTA_FILE {path}: {who!r} must map to an object with only {sorted(known)}"
            )
        if not all(isinstance(v, int) and v >= 0 for v in values.values()):
            raise ValueError(f"COVE_QUOTA_FILE {path}: {who!r}: limits are integers >= 0")
        out[who] = Limits(**{**base.__dict__, **values})
    return out


class Quotas:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.default = Limits.from_settings(settings)
        self.overrides = load_overrides(settings.quota_file, self.default)

    def limits(self, owner: str) -> Limits:
        """`owner` is a key's hash; the file may name it by hash or by its label."""
        if owner in self.overrides:
            return self.overrides[owner]
        label = self.store.key_label(owner) if self.overrides else None
        return self.overrides.get(label or "", self.default)

    def check(self, owner: str, spec: RecordSpec, replacing: SandboxRecord | None = None) -> None:
        """May `owner` hold a sandbox of `spec` (running)? `replacing`: its own record, if any."""
        lim = self.limits(owner)
        others = [r for r in self.store.list(owner) if replacing is None or r.id != replacing.id]
        running = [r for r in others if r.state not in IDLE]
        use = {
            "sandboxes": len(others),
            "cpu": sum(r.spec.cpu for r in running),
            "memory_gib": sum(r.spec.memory for r in running),
            "disk_gib": sum(r.spec.disk for r in others),
        }
        asked = {"sandboxes": 1, "cpu": spec.cpu, "memory_gib": spec.memory, "disk_gib": spec.disk}
        for name, limit in lim.__dict__.items():
            if limit and use[name] + asked[name] > limit:
                held = "in sandboxes not stopped" if name in ("cpu", "memory_gib") else "now"
                raise QuotaExceeded(
                    f"quota exceeded: {SETTING[name]} allows {limit} {UNIT[name]} for this API "
                    f"key; it uses {use[name]} {held} and this asks for {asked[name]} more"
                )


class Admission:
    """Refuses work the host has no room for (thresholds from the settings)."""

    def __init__(self, settings: Settings, room: Callable[[], HostRoom | None]) -> None:
        self.min_memory = settings.admit_min_memory_mib * MiB
        self.min_disk = settings.admit_min_disk_gib * GiB
        self.room = room

    def check(self, spec: RecordSpec) -> None:
        room = self.room()
        if room is None:  # the backend places by its own accounting (ray)
            return
        free = room.disk_free
        if spec.disk * GiB > free:
            raise BadRequest(
                f"field 'disk': {spec.disk} GiB asked, but the host has only "
                f"{free / GiB:.1f} GiB free for sandbox disks"
            )
        if room.memory_available < self.min_memory:
            raise NoCapacity(
                f"the host is short of memory: {room.memory_available // MiB} MiB available, "
                f"below COVE_ADMIT_MIN_MEMORY_MIB={self.min_memory // MiB}; try again later"
            )
        if free < self.min_disk:
            raise NoCapacity(
                f"the host is short of disk: {free / GiB:.1f} GiB free for sandbox disks, "
                f"below COVE_ADMIT_MIN_DISK_GIB={self.min_disk // GiB}; try again later"
            )
