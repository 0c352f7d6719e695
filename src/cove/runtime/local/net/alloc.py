"""Host-wide numbering of sandbox address pairs.

Index N owns 100.72.0.0/16's N-th /30: the host side (gateway, resolver)
is .1, the sandbox .2. Several control planes may run on one host (each
with its own data directory), so an index is claimed by creating a file
with O_EXCL under /run (tmpfs: gone at reboot, as the namespaces are). The
file names the owning instance and sandbox, so that a control plane started
after a SIGKILL finds and removes exactly its own leftovers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REGISTRY = Path("/run/cove/net")
SANDBOX_NET = ipaddress.IPv4Network("100.72.0.0/16")
MAX_INDEX = SANDBOX_NET.num_addresses // 4 - 1


@dataclass(frozen=True)
class Slot:
    index: int

    @property
    def gateway(self) -> str:
        return str(SANDBOX_NET.network_address + self.index * 4 + 1)

    @property
    def address(self) -> str:
        return str(SANDBOX_NET.network_address + self.index * 4 + 2)

    @property
    def host_if(self) -> str:
        return f"cv-{self.index}"

    @property
    def netns(self) -> str:
        return f"cove-{self.index}"


def claim(instance: str, sandbox_id: str) -> Slot:
    """A free index, searched from a random start: an address just released is
    not handed straight to the next sandbox (replies to its old connections
    may still be in flight)."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    used = {int(p.name) for p in REGISTRY.iterdir() if p.name.isdigit()}
    start = secrets.randbelow(MAX_INDEX)
    for step in range(MAX_INDEX):
        index = 1 + (start + step) % MAX_INDEX  # not 0: its gateway would be the network address
        if index in used:
            continue
        try:
            fd = os.open(REGISTRY / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another control plane claimed it meanwhile
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"instance": instance, "sandbox": sandbox_id}, f)
        return Slot(index)
    raise OSError(f"all {MAX_INDEX} sandbox address pairs of {SANDBOX_NET} are in use")


def rename(slot: Slot, instance: str, sandbox_id: str) -> None:
    """A pooled sandbox took a new id: its claim follows."""
    tmp = REGISTRY / f".{slot.index}.tmp"
    tmp.write_text(json.dumps({"instance": instance, "sandbox": sandbox_id}))
    tmp.rename(REGISTRY / str(slot.index))


def release(slot: Slot) -> None:
    with contextlib.suppress(FileNotFoundError):
        (REGISTRY / str(slot.index)).unlink()


def owned(instance: str) -> dict[int, str]:
    """index -> sandbox id, for every claim of `instance`."""
    out: dict[int, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for p in REGISTRY.iterdir():
            if not p.name.isdigit():
                continue
            try:
                claim_ = json.loads(p.read_text())
            except (OSError, ValueError):
                continue  # being written by its claimer
            if claim_.get("instance") == instance:
                out[int(p.name)] = str(claim_.get("sandbox"))
    return out
