"""Paths in requests, OS errors as wire errors, and stat results as `FileInfo`.

Every path is taken inside the sandbox (the agent runs there, as the
sandbox's user), so `..` and symbolic links resolve in the sandbox's own
mount namespace: no host path is ever built from a request.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import grp
import os
import pwd
import stat
import time
from typing import BinaryIO

from cove.wire.errors import (
    AccessDenied,
    BadRequest,
    Conflict,
    CoveError,
    InsufficientStorage,
    InternalError,
    NotFound,
)
from cove.wire.protocol.files import FileInfo

PATH_MAX = 4096
# Kernel views, not files: a walk from above them does not enter them (/proc
# alone holds tens of thousands of entries that change as they are read).
PSEUDO = ("/proc", "/sys", "/dev")


def resolve(workdir: str, raw: str | None, name: str = "path") -> str:
    """The absolute path of `raw`: relative paths are under the working directory."""
    if raw is None or raw == "":
        raise BadRequest(f"query parameter '{name}' is required")
    if "\0" in raw:
        raise BadRequest(f"{name} {raw!r} contains a NUL byte")
    if len(raw.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise BadRequest(f"{name} is longer than a path can be ({PATH_MAX} bytes)")
    return os.path.normpath(os.path.join(workdir, raw))


def open_regular(path: str) -> BinaryIO:
    """`path` opened for reading if it is a regular file, checked on the open file itself.

    User code may swap the name for a FIFO or a device between any earlier check and
    this open: `O_NONBLOCK` keeps a FIFO's open from waiting for a writer (which would
    hold the agent's loop or a worker thread for ever), and `fstat` judges what was opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error(exc, path) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BadRequest(f"is a directory: {path}")
        if not stat.S_ISREG(mode):
            raise BadRequest(f"not a regular file: {path}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def os_error(exc: OSError, path: str) -> CoveError:
    """The wire error an OS failure on `path` means, named by whose fault it is."""
    code, reason = exc.errno, exc.strerror or str(exc)
    if code in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"no such file or directory: {path}", code="FILE_NOT_FOUND")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDenied(f"permission denied: {path} ({reason})")
    if code == errno.EEXIST:
        return Conflict(f"already exists: {path}")
    if code == errno.ENOTEMPTY:
        return BadRequest(f"directory not empty: {path} (pass recursive=true to delete it)")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage(f"no space left in the sandbox for {path}")
    if code == errno.EBUSY:
        return Conflict(f"{reason}: {path}")
    if code == errno.EIO:  # the disk failed us, not the request
        return InternalError(f"{reason}: {path}")
    # Anything else is about the path the caller named (EINVAL, ELOOP, EXDEV, ...).
    return BadRequest(f"{reason}: {path}")


def parse_mode(raw: str, name: str = "mode") -> int:
    """An octal permission string ("755", "0644") as bits."""
    text = raw.strip()
    if not text or len(text) > 5 or any(c not in "01234567" for c in text):
        raise BadRequest(f"{name} {raw!r} is not an octal permission like '755'")
    mode = int(text, 8)
    if mode > 0o7777:
        raise BadRequest(f"{name} {raw!r} is more than permission bits (at most 7777)")
    return mode


def parse_bool(raw: str | None, name: str) -> bool:
    if raw is None or raw.lower() in ("", "false", "0"):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise BadRequest(f"query parameter '{name}' must be true or false, got {raw!r}")


@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@functools.lru_cache(maxsize=256)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# Go's FileMode.String() letters, in its order, for the bits `ls` shows before rwx.
def _type_letters(mode: int) -> str:
    letters = ""
    if stat.S_ISDIR(mode):
        letters += "d"
    if stat.S_ISLNK(mode):
        letters += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        letters += "D"
    if stat.S_ISFIFO(mode):
        letters += "p"
    if stat.S_ISSOCK(mode):
        letters += "S"
    if mode & stat.S_ISUID:
        letters += "u"
    if mode & stat.S_ISGID:
        letters += "g"
    if stat.S_ISCHR(mode):
        letters += "c"
    if mode & stat.S_ISVTX:
        letters += "t"
    return letters or "-"


def mode_string(mode: int) -> str:
    rwx = "".join(
        ch if mode & bit else "-"
        for ch, bit in zip(
            "rwxrwxrwx", (0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 4, 2, 1), strict=True
        )
    )
    return _type_letters(mode) + rwx


def go_time(seconds: float, nanos: int) -> str:
    """Go's time.String(): `2006-01-02 15:04:05.123456789 -0700 MST` (fraction trimmed)."""
    t = time.localtime(seconds)
    fraction = f"{nanos % 1_000_000_000:09d}".rstrip("0")
    zone = time.strftime("%z", t)
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", t)
        + (f".{fraction}" if fraction else "")
        + (f" {zone} {t.tm_zone}")
    )


def rfc3339(seconds: float, nanos: int) -> str:
    t = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{nanos % 1_000_000_000:09d}Z"


def info(path: str, st: os.stat_result | None = None) -> FileInfo:
    """The entry at `path` itself (a symbolic link is described, not followed)."""
    if st is None:
        st = os.lstat(path)
    target = None
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            target = os.readlink(path)
    return FileInfo(
        name=os.path.basename(path) or path,
        size=st.st_size,
        is_dir=stat.S_ISDIR(st.st_mode),
        mode=mode_string(st.st_mode),
        permissions=f"{stat.S_IMODE(st.st_mode):04o}",
        owner=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mod_time=go_time(st.st_mtime, st.st_mtime_ns),
        modified_at=rfc3339(st.st_mtime, st.st_mtime_ns),
        path=path,
        symlink_target=target,
    )
