"""A sandbox's root filesystem from an image: overlayfs, and the agent mounted in.

The root is an overlay of the image's read-only layers (shared by every
sandbox on the image) under the sandbox's own `upper` directory, which
survives stop/start. The control plane mounts it, as root, at
`<sandbox>/rootfs` before bwrap starts and unmounts it at stop: bwrap 0.8
(Debian 12) has no `--overlay`, and an overlay mounted by root checks each
access against the sandbox's own credentials, so image files stay as
read-only to it as on any Linux host (measured: mount ~5 ms).

bwrap binds that tree as `/` and adds what every sandbox has (proc, dev,
tmp, the workspace, the control dir). It cannot create mount points in a
root the sandbox uid cannot write, so a small shared layer of empty mount
points sits on top of every image's layers.

The agent does not use anything of the image but `/bin/sh` for user
commands: the host's `/usr` is bound at `/opt/cove/host/usr` and the agent
runs on the host's Python through the host's dynamic loader, so an image
with another libc (or none but a static shell) still gets exec.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from cove.images.store import IMAGE_UID
from cove.runtime.local import fs

HOST_USR = "/opt/cove/host/usr"
MOUNTPOINTS_VERSION = "3"
# Mount points bwrap needs in the root; cgroup controller names as SandboxCgroups binds them.
_DIRS = (
    "opt/cove/host/usr", "opt/cove/lib", "opt/cove/runtime", "run/cove", "home/user",
    "tmp", "var/tmp", "proc", "dev", "etc",
    "run/cove-cgroup", "run/cove-src", "run/cove-context", "run/cove-build",
)  # fmt: skip
_FILES = ("etc/passwd", "etc/group", "etc/hosts", "etc/hostname", "etc/resolv.conf")
PYTHON_CANDIDATES = ("usr/local/bin/python3", "usr/bin/python3")

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
MS_RDONLY = 1
MS_BIND = 4096


def mountpoint_layer(root: Path) -> Path:
    """The shared top layer of empty mount points (made once per version)."""
    path = root / f"mountpoints-{MOUNTPOINTS_VERSION}"
    if path.is_dir():
        return path
    tmp = root / f".mountpoints.{os.getpid()}"
    for d in _DIRS:
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").chmod(0o1777)
    (tmp / "var/tmp").chmod(0o1777)
    for f in _FILES:
        (tmp / f).touch()
        (tmp / f).chmod(0o644)
    for dirpath, _, files in os.walk(tmp):
        if not dirpath.endswith("tmp"):
            os.chmod(dirpath, 0o755)
        # Owned like image files: root's in a build sandbox, nobody's elsewhere.
        os.lchown(dirpath, IMAGE_UID, IMAGE_UID)
        for name in files:
            os.lchown(os.path.join(dirpath, name), IMAGE_UID, IMAGE_UID)
    try:
        tmp.rename(path)
    except OSError:  # another control plane made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def mount_overlay(
    lower: list[str], upper: Path, work: Path, target: Path, owner: int = IMAGE_UID
) -> None:
    """Mount lower (top first) + upper at target; OSError with the reason if the kernel refuses."""
    for d in (upper, work, target):
        d.mkdir(exist_ok=True)
    # Files the sandbox writes (as its own host uid) land in `upper`. The root
    # of `upper` is `/`: owned like image files (root's in a build sandbox,
    # never a sandbox user's), or by `owner`, the uid a root-in-sandbox is.
    os.chown(upper, owner, owner)
    os.chmod(upper, 0o755)
    opts = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(opts) >= 4096:
        raise OSError(errno.E2BIG, f"too many image layers to mount ({len(lower)})")
    rc = _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mounting the image's root filesystem: {os.strerror(err)}")


def mount_readonly(lower: list[str], target: Path) -> None:
    """Mount layers (top first, at least two) read-only at target: an image as it is."""
    opts = f"lowerdir={':'.join(lower)}"
    if len(opts) >= 4096:
        raise OSError(errno.E2BIG, f"too many image layers to mount ({len(lower)})")
    rc = _libc.mount(b"overlay", str(target).encode(), b"overlay", MS_RDONLY, opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mounting an image read-only: {os.strerror(err)}")


def bind_mount(source: str, target: Path) -> None:
    """`source` also at `target` (bwrap binds it read-only from there)."""
    rc = _libc.mount(source.encode(), str(target).encode(), None, MS_BIND, None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"binding {source}: {os.strerror(err)}")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, from the kernel's table.

    Not `os.path.ismount`: a bind mount within one filesystem looks like a
    plain directory to it, and an rmtree through one deletes its source.
    """
    top = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == top or point.startswith(top + "/"):
                found.append(point)
    return found


def is_mounted(target: Path) -> bool:
    return os.path.realpath(target) in mounts_under(target)


def unmount(target: Path) -> None:
    """Detach what is mounted at `target` (lazily: processes that hold it keep their view)."""
    while _libc.umount2(str(target).encode(), MNT_DETACH) == 0:
        pass  # mounts can be stacked: detach each
    err = ctypes.get_errno()
    if err not in (errno.EINVAL, errno.ENOENT):
        raise OSError(err, f"unmounting {target}: {os.strerror(err)}")


def remove_tree(path: Path) -> None:
    """rmtree `path`, after detaching every mount below it; refuses if one stays."""
    for point in sorted(mounts_under(path), key=len, reverse=True):
        unmount(Path(point))
    left = mounts_under(path)
    if left:
        raise OSError(errno.EBUSY, f"not removing {path}: still mounted there: {left[0]}")
    shutil.rmtree(path, ignore_errors=True)


def _read_in_layers(lower: list[str], rel: str) -> str | None:
    for layer in lower:
        path = os.path.join(layer, rel)
        if os.path.lexists(path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return f.read()
            except OSError:  # a whiteout (char device) or a dangling link: not there
                return None
    return None


def find_python(lower: list[str]) -> str | None:
    """The image's python3 (as the sandbox sees it), or None if it has none."""
    for rel in PYTHON_CANDIDATES:
        for layer in lower:
            path = os.path.join(layer, rel)
            if os.path.lexists(path):
                if os.path.islink(path) or os.path.isfile(path):
                    return "/" + rel
                break  # a whiteout hides the lower layers' copy
    return None


def account_files(lower: list[str]) -> tuple[bytes, bytes]:
    """/etc/passwd and /etc/group: the image's entries plus the sandbox user's."""
    passwd = _read_in_layers(lower, "etc/passwd") or "root:x:0:0:root:/root:/bin/sh\n"
    group = _read_in_layers(lower, "etc/group") or "root:x:0:\n"
    uid = str(fs.SANDBOX_UID)
    if not any(line.split(":")[2:3] == [uid] for line in passwd.splitlines()):
        passwd = passwd.rstrip("\n") + f"\n{fs.SANDBOX_USER}:x:{uid}:{uid}::{fs.HOME}:/bin/sh\n"
    if not any(line.split(":")[2:3] == [uid] for line in group.splitlines()):
        group = group.rstrip("\n") + f"\n{fs.SANDBOX_USER}:x:{uid}:\n"
    return passwd.encode(), group.encode()


def _interpreter(binary: str) -> str:
    """The ELF program interpreter (dynamic loader) `binary` asks for."""
    with open(binary, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            raise OSError(f"{binary} is not a 64-bit ELF file")
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            entry = table[i * phentsize : (i + 1) * phentsize]
            if int.from_bytes(entry[0:4], "little") == 3:  # PT_INTERP
                offset = int.from_bytes(entry[8:16], "little")
                size = int.from_bytes(entry[32:40], "little")
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    raise OSError(f"{binary} names no dynamic loader")


def agent_argv() -> list[str]:
    """How to run the host's Python inside an image: its loader and libraries from HOST_USR."""
    python = os.path.realpath(fs.AGENT_PYTHON)  # e.g. /usr/bin/python3.11
    loader = os.path.realpath(_interpreter(python))  # /lib64 -> /usr/lib64 on merged /usr
    if not (python.startswith("/usr/") and loader.startswith("/usr/")):
        raise OSError(f"the agent's Python ({python}) and loader ({loader}) must be under /usr")
    libs = [f"/usr/lib/{platform.machine()}-linux-gnu", "/usr/lib"]
    inside = [HOST_USR + p[len("/usr") :] for p in libs]
    return [
        HOST_USR + loader[len("/usr") :],
        "--library-path",
        ":".join(inside),
        HOST_USR + python[len("/usr") :],
    ]


@dataclass
class ImageRoot:
    """A mounted image root and the account files made for it."""

    rootfs: str
    passwd: bytes
    group: bytes


def filesystem_args(fa: fs.FdArgs, root: ImageRoot) -> None:
    """The image's root as `/`, the host's /usr for the agent, generated /etc files."""
    a = fa.args
    a += ["--bind-fd", fa.path_fd(root.rootfs), "/"]
    a += ["--ro-bind", "/usr", HOST_USR]
    # The cgroup files are bound inside; a tmpfs lets bwrap make their mount points.
    a += ["--tmpfs", fs.CGROUP]
    a += ["--perms", "0644", "--ro-bind-data", fa.data_fd(root.passwd), "/etc/passwd"]
    a += ["--perms", "0644", "--ro-bind-data", fa.data_fd(root.group), "/etc/group"]
    a += ["--perms", "0644", "--ro-bind-data", fa.data_fd(fs.HOSTS), "/etc/hosts"]
    a += ["--perms", "0644", "--ro-bind-data", fa.data_fd(b"sandbox\n"), "/etc/hostname"]
