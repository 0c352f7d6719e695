"""A sandbox's host directories and its unprivileged host uid.

Each sandbox owns `<root>/<id>/` (`home` bound as its workspace, `control`
as the agent's directory) and a host uid of its own in a range no real user
has, so that two sandboxes never share file ownership or signal rights. The
uid is derived from the id and probed against the uids in use; the owner of
`home` records it, so it survives a control-plane restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

UID_BASE = 600_000
UID_SPAN = 1 << 24
SUBDIRS = ("home", "control")


def allocate_uid(root: Path, sandbox_id: str) -> int:
    """A host uid no other sandbox under `root` has."""
    used = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in root.iterdir():
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                used.add((entry / "home").stat().st_uid)
    uid = UID_BASE + int(hashlib.sha256(sandbox_id.encode()).hexdigest(), 16) % UID_SPAN
    while uid in used:
        uid = UID_BASE + (uid - UID_BASE + 1) % UID_SPAN
    return uid


def make_dirs(base: Path, uid: int) -> None:
    """`base/home` and `base/control`, private to `uid`."""
    for sub in SUBDIRS:
        path = base / sub
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, uid, uid)
        path.chmod(0o700)
