"""A sandbox's disk: its own small ext4 filesystem in a sparse file, loop-mounted.

Everything a sandbox writes to the host disk lives on it: its workspace
(`home`), its control directory (the agent's command and session logs) and,
with an image, its root's upper layer. When it is full, writes inside fail
with ENOSPC and the host's own filesystem is untouched. Why this design and
not project quotas: see docs/disk-quota.md (this kernel has no quota format
module, so ext4's `prjquota` cannot mount; a filesystem per sandbox needs none).

Layout under a sandbox's directory `<sid>/`:

    disk.ext4        the sparse image (grows with what is written; `discard`
                     punches holes again for what is deleted)
    vol/             its mount point: vol/home, vol/control, vol/upper, vol/work
    home, control    bind mounts of vol/home and vol/control (the paths the
                     rest of the backend uses, unchanged)

The image is a copy of a per-size template formatted once (a copy of its few
allocated blocks takes milliseconds; mkfs takes 30-150 ms here). The loop
device is set up by ioctl with autoclear, so detaching the last mount frees
it; nothing to clean but the mounts (`imagefs.remove_tree` detaches them).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

from cove.runtime.local import imagefs

IMAGE = "disk.ext4"
VOLUME = "vol"
BOUND = ("home", "control")  # bound back to `<sid>/<name>`
TEMPLATE_VERSION = 2
MOUNT_OPTIONS = b"discard,noinit_itable"
RELEASE_TIMEOUT = 30.0  # for a stopped sandbox's last processes to let go of its disk
ATTACH_TIMEOUT = 30.0  # for a free loop device while other processes take them too
MS_NOSUID, MS_NODEV = 2, 4

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
# struct loop_config: fd, block_size, struct loop_info64 (232 bytes), 8 reserved u64.
_INFO64 = 232
_CONFIG = struct.Struct(f"=II{_INFO64}s64x")
_FLAGS_OFFSET = 52  # lo_flags within loop_info64

_libc = ctypes.CDLL(None, use_errno=True)
_ATTACHING = threading.Lock()  # one loop attach at a time in this process (see _attach)
MS_BIND = 4096


def available() -> str | None:
    """None if sandbox disks can be made here, else why not."""
    if os.geteuid() != 0:
        return "sandbox disks need root (loop devices and mounts)"
    if not os.path.exists("/dev/loop-control"):
        return "this host has no /dev/loop-control"
    for tool in ("/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"):
        if os.path.exists(tool):
            return None
    return "mkfs.ext4 is missing (e2fsprogs)"


def _template(cache: Path, size: int) -> Path:
    """A formatted, sparse image of `size` bytes (made once, shared by servers)."""
    path = cache / f"ext4-{size}-v{TEMPLATE_VERSION}.img"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        with open(tmp, "wb") as f:
            f.truncate(size)
        subprocess.run(
            [
                "mkfs.ext4", "-q", "-F", "-m", "0",
                # No journal (mounts ~4x faster: docs/disk-quota.md); nothing
                # zeroed now or later (noinit_itable at mount): copies stay sparse.
                "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard",
                str(tmp),
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        # 1 MiB only root may use: the control plane can still write the
        # agent's config and log into a disk the sandbox filled.
        subprocess.run(["tune2fs", "-r", "256", str(tmp)], check=True, capture_output=True)
        os.rename(tmp, path)  # another server may have made it meanwhile: same content
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _copy_sparse(src: Path, dest: Path) -> None:
    """Copy only the allocated extents of `src` (holes stay holes)."""
    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    dfd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        size = os.fstat(sfd).st_size
        offset = 0
        while offset < size:
            try:
                data = os.lseek(sfd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after `offset`
                    break
                raise
            hole = os.lseek(sfd, data, os.SEEK_HOLE)
            while data < hole:
                chunk = os.pread(sfd, min(hole - data, 1 << 20), data)
                data += os.pwrite(dfd, chunk, data)
            offset = hole
        os.ftruncate(dfd, size)
    finally:
        os.close(sfd)
        os.close(dfd)


def _attach(image: Path) -> tuple[str, int]:
    """A free loop device backed by `image`, and an open descriptor of it.

    Autoclear detaches the device at its last close: the caller mounts it
    (the mount holds it from then on) before closing the descriptor.
    """
    fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        info = bytearray(_INFO64)
        struct.pack_into("=I", info, _FLAGS_OFFSET, LO_FLAGS_AUTOCLEAR)
        config = _CONFIG.pack(fd, 0, bytes(info))
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            # The kernel offers every caller the same lowest free device, and only
            # one of them gets it. This process's threads take turns (a burst of
            # creates made them lose to each other 64 times in a row); other
            # processes (another server, losetup) are outlasted with a deadline.
            with _ATTACHING:
                return _configure_free(ctl, config)
        finally:
            os.close(ctl)
    finally:
        os.close(fd)


def _configure_free(ctl: int, config: bytes) -> tuple[str, int]:
    deadline = time.monotonic() + ATTACH_TIMEOUT
    tries = 0
    while True:
        number = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
        dev = f"/dev/loop{number}"
        loop = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(loop, LOOP_CONFIGURE, config)
            return dev, loop
        except OSError as exc:
            os.close(loop)
            if exc.errno != errno.EBUSY:
                raise
        tries += 1
        if time.monotonic() >= deadline:
            raise OSError(
                errno.EBUSY,
                f"no free loop device after {tries} tries in {ATTACH_TIMEOUT:g}s "
                "(other processes took each one offered first)",
            )
        time.sleep(min(0.0005 * tries, 0.02))  # let the winner finish its configure


def _mount(source: str, target: Path, fstype: bytes | None, flags: int, data: bytes | None) -> None:
    rc = _libc.mount(source.encode(), str(target).encode(), fstype, flags, data)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mounting {source} at {target}: {os.strerror(err)}")


def volume(base: Path) -> Path:
    return base / VOLUME


def create(base: Path, cache: Path, size: int, uid: int) -> None:
    """Give the sandbox at `base` a disk of `size` bytes and mount it (blocking)."""
    _copy_sparse(_template(cache, size), base / IMAGE)
    ensure_mounted(base, size, uid, fresh=True)


def ensure_mounted(base: Path, size: int, uid: int, *, fresh: bool = False) -> None:
    """Mount `base`'s disk if it is not (after a host restart), grown to `size` if smaller.

    A disk only grows (resize refuses to shrink one): a larger `size` extends
    the image and its filesystem, offline (an online grow needs
    CAP_SYS_RESOURCE, which root lacks on these hosts). Only a stopped
    sandbox is resized, so nothing holds the disk then. A `fresh` image (just
    copied) cannot back a loop device yet, so the scan for its holders (every
    /sys/block/loop*, hundreds on a busy host: tens of ms) is skipped.
    """
    image, vol = base / IMAGE, volume(base)
    if os.stat(image).st_size < size:
        for name in (*BOUND, VOLUME):
            _unmount_now(base / name)
        _wait_released(image)
        os.truncate(image, size)
        # resize2fs wants a fresh check; 1 and 2 mean "fixed" (e.g. free counts, kept
        # in memory only by a filesystem without a journal), 4 and up a real failure.
        fsck = subprocess.run(["e2fsck", "-f", "-p", str(image)], capture_output=True, text=True)
        if fsck.returncode >= 4:
            raise OSError(errno.EIO, f"e2fsck of the sandbox's disk: {fsck.stdout}{fsck.stderr}")
        subprocess.run(["resize2fs", str(image)], check=True, capture_output=True)
    if not imagefs.is_mounted(vol):
        vol.mkdir(exist_ok=True)
        if not fresh:
            _wait_released(image)  # never a second live filesystem on one image
        dev, held = _attach(image)
        try:
            _mount(dev, vol, b"ext4", MS_NOSUID | MS_NODEV, MOUNT_OPTIONS)
        finally:
            os.close(held)
        vol.chmod(0o755)
    for name in BOUND:  # (an image root's upper and work are made when it is mounted)
        inner = vol / name
        if not inner.exists():
            inner.mkdir()
            os.chown(inner, uid, uid)
            inner.chmod(0o700)
    for name in BOUND:
        outer = base / name
        if not imagefs.is_mounted(outer):
            _mount(str(vol / name), outer, None, MS_BIND, None)


def _loop_holders(image: Path) -> list[str]:
    """The loop devices backed by `image` (the kernel lists each one's backing file)."""
    held = []
    for name in os.listdir("/sys/block"):  # not Path.glob: a third slower over hundreds
        if not name.startswith("loop"):
            continue
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                if f.read().strip() == str(image):
                    held.append(name)
        except OSError:  # unbound, or cleared while we looked
            continue
    return held


def _wait_released(image: Path, timeout: float = RELEASE_TIMEOUT) -> None:
    """Wait until no loop device holds `image` before it is changed offline.

    Unmounting here removes only the host's view: the stopped sandbox's own
    mount namespace can keep the filesystem alive for a moment (its last
    processes still exiting), and growing an image under a live ext4 corrupts
    it. Autoclear frees the device once the last holder is gone.
    """
    deadline = time.monotonic() + timeout
    while held := _loop_holders(image):
        if time.monotonic() > deadline:
            raise OSError(
                errno.EBUSY, f"the sandbox's disk is still in use ({held[0]}) after {timeout:g}s"
            )
        time.sleep(0.05)


def _unmount_now(target: Path) -> None:
    """Unmount `target` and wait for it (not lazily): the image is changed next."""
    while imagefs.is_mounted(target):
        if _libc.umount2(str(target).encode(), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unmounting {target}: {os.strerror(err)}")


def nearly_full(vol: Path, size: int) -> bool:
    """Whether the disk mounted at `vol` has (almost) no room left for unprivileged writes.

    What a failed build step's ENOSPC leaves behind: less than 1% (at most
    16 MiB) of `size` free, or no inode left.
    """
    st = os.statvfs(vol)
    return st.f_bavail * st.f_frsize < min(size // 100, 16 << 20) or st.f_favail == 0


def unmount(base: Path) -> None:
    """Detach the binds and the volume (the loop device goes with the last of them)."""
    for name in BOUND:
        imagefs.unmount(base / name)
    imagefs.unmount(volume(base))
