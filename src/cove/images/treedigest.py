"""A layer tree's content digest: what a copy of it must hash to on arrival.

A layer's key names what made it (a build step's inputs, a pulled blob),
not its bytes; a copy sent to another host (a Ray node, see
runtime/ray/shipping.py) is checked against this digest of the tree itself.
It covers every entry's path, type, permission bits, owner, device number
(overlayfs whiteouts are 0:0 character devices), symlink target, extended
attributes (an opaque directory's `trusted.overlay.opaque`) and file bytes:
everything a sandbox on the layer can see. Times are left out: a copy may
differ there and no sandbox's behaviour depends on them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cove.images.store import ImageStore

PIECE = 1 << 20


def tree_digest(root: Path) -> str:
    """sha256 over `root`'s entries in path order (blocking: run it in a thread)."""
    h = hashlib.sha256()
    _entry(h, str(root), ".")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            _entry(h, path, os.path.relpath(path, root))
    return "sha256:" + h.hexdigest()


def _entry(h: hashlib._Hash, path: str, rel: str) -> None:
    st = os.lstat(path)
    h.update(f"{rel}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        h.update(f"dev {st.st_rdev}\0".encode())
    elif stat.S_ISLNK(st.st_mode):
        h.update(os.readlink(path).encode() + b"\0")
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            while piece := f.read(PIECE):
                h.update(piece)
        h.update(b"\0")
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        value = os.getxattr(path, name, follow_symlinks=False)
        h.update(f"x {name}\0".encode() + value + b"\0")
    h.update(b"\n")


def layer_digest(store: ImageStore, key: str) -> str:
    """A stored layer's digest, worked out once and kept next to it (layers never change)."""
    note = store.root / "layers" / f".{key}.digest"
    try:
        return note.read_text().strip()
    except FileNotFoundError:
        digest = tree_digest(store.layer_path(key))
        tmp = note.with_name(f"{note.name}.{os.getpid()}")
        tmp.write_text(digest)
        tmp.rename(note)
        return digest
