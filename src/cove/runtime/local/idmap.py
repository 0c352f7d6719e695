"""ID-mapped mounts: image layers seen with another owner, for root-in-sandbox.

Image files belong on disk to `IMAGE_UID`. A sandbox whose image runs as
root sees each layer through an ID-mapped mount whose mapping turns
`IMAGE_UID` into the sandbox's own host uid, which is uid 0 inside its user
namespace: the image's files are root's there, and nobody else's anywhere.
The layers themselves are not touched (the mounts are read-only, and the
overlay above them copies changes up into the sandbox's own upper layer).

The mapping comes from a user namespace made for the purpose: a short-lived
`unshare --user` child whose maps the control plane (root) writes, kept as
an fd only while the mounts are made. Linux >= 5.19 (overlayfs over
ID-mapped layers); measured here: ~25 ms a layer under load.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)

# x86_64 and aarch64 share these numbers (the new mount API is in the common table).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_IDMAP = 0x100000


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def mapping_namespace(inside: int, host: int) -> int:
    """An fd of a user namespace mapping uid and gid `inside` to `host` (close it after use)."""
    child = subprocess.Popen(
        ["unshare", "--user", "--", "sh", "-c", "echo ready; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != b"ready":
            raise OSError(f"unshare --user failed (exit status {child.wait()})")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{child.pid}/{name}", "w") as f:
                f.write(f"{inside} {host} 1\n")
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.stdin.close()
        child.wait()
        child.stdout.close()


def mount_mapped(source: Path, target: Path, userns_fd: int) -> None:
    """`source` also at `target`, read-only, with owners seen through `userns_fd`'s map."""
    fd = _check(
        _libc.syscall(SYS_OPEN_TREE, -100, str(source).encode(), OPEN_TREE_CLONE | os.O_CLOEXEC),
        f"open_tree {source}",
    )
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, 0, 0, userns_fd)
        _check(
            _libc.syscall(
                SYS_MOUNT_SETATTR,
                fd,
                b"",
                AT_EMPTY_PATH,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
            ),
            f"ID-mapping {source}",
        )
        target.mkdir(parents=True, exist_ok=True)
        _check(
            _libc.syscall(
                SYS_MOVE_MOUNT, fd, b"", -100, str(target).encode(), MOVE_MOUNT_F_EMPTY_PATH
            ),
            f"mounting {source} at {target}",
        )
    finally:
        os.close(fd)


def mount_layers(lower: list[str], dest: Path, inside: int, host: int) -> list[str]:
    """Each layer of `lower` ID-mapped under `dest` (0, 1, ...); their paths, same order."""
    userns = mapping_namespace(inside, host)
    try:
        out = []
        for i, layer in enumerate(lower):
            target = dest / str(i)
            mount_mapped(Path(layer), target, userns)
            out.append(str(target))
        return out
    finally:
        os.close(userns)
