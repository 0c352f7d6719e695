"""File system operations on single entries: list, info, mkdir, delete, move, chmod/chown.

Plain functions on absolute in-sandbox paths (see `paths.resolve`); each
raises the wire error its failure means. Long walks run in a worker thread
(the routes do that), so these are synchronous.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat

from cove.agent.files.paths import PSEUDO, info, os_error
from cove.wire.errors import BadRequest, Conflict, NotFound
from cove.wire.numbers import is_number
from cove.wire.protocol.files import FileInfo

MAX_LIST_DEPTH = 64  # deeper trees are walked by asking again from a deeper path


def lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as exc:
        raise os_error(exc, path) from None


def get_info(path: str) -> FileInfo:
    return info(path, lstat(path))


def list_dir(path: str, depth: int = 1) -> list[FileInfo]:
    """The entries under `path`, `depth` levels down (1: its children only), by path."""
    if depth < 1 or depth > MAX_LIST_DEPTH:
        raise BadRequest(f"depth must be between 1 and {MAX_LIST_DEPTH}, got {depth}")
    try:
        st = os.stat(path)  # a link to a directory lists the directory, as `ls` does
    except OSError as exc:
        raise os_error(exc, path) from None
    if not stat.S_ISDIR(st.st_mode):
        raise BadRequest(f"not a directory: {path}")
    out: list[FileInfo] = []
    _walk(path, depth, out)
    return out


def _walk(path: str, depth: int, out: list[FileInfo]) -> None:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if out:  # a subdirectory we may not read: list what we can
            return
        raise os_error(exc, path) from None
    for entry in entries:
        try:
            out.append(info(entry.path, entry.stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue  # removed while we listed
        if depth > 1 and entry.is_dir(follow_symlinks=False) and entry.path not in PSEUDO:
            _walk(entry.path, depth - 1, out)


def make_dir(path: str, mode: int) -> None:
    """`mkdir -p` with exactly `mode` on the directory itself (umask aside)."""
    try:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise Conflict(f"already exists and is not a directory: {path}")
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    except OSError as exc:
        raise os_error(exc, path) from None


def delete(path: str, recursive: bool) -> None:
    st = lstat(path)
    try:
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)  # a file, or a link (never what it points to)
        elif recursive:
            shutil.rmtree(path)
        else:
            os.rmdir(path)
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY or (exc.errno == errno.EEXIST and not recursive):
            raise BadRequest(
                f"directory not empty: {path} (pass recursive=true to delete it)"
            ) from None
        raise os_error(exc, exc.filename or path) from None


def move(source: str, destination: str) -> None:
    lstat(source)
    if os.path.lexists(destination):
        raise Conflict(f"destination already exists: {destination}")
    parent = os.path.dirname(destination)
    if not os.path.isdir(parent):
        raise NotFound(f"no such directory: {parent}", code="FILE_NOT_FOUND")
    try:
        os.rename(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise os_error(exc, destination) from None
        try:  # another file system (e.g. /tmp): copy, then remove the source
            shutil.move(source, destination)
        except OSError as exc2:
            raise os_error(exc2, destination) from None


def _user_id(owner: str) -> int:
    if is_number(owner):
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except (KeyError, ValueError):  # ValueError: a NUL or text no name can hold
        raise BadRequest(f"no such user in the sandbox: {owner!r}") from None


def _group_id(group: str) -> int:
    if is_number(group):
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except (KeyError, ValueError):
        raise BadRequest(f"no such group in the sandbox: {group!r}") from None


def set_permissions(path: str, mode: int | None, owner: str | None, group: str | None) -> None:
    uid = _user_id(owner) if owner else -1
    gid = _group_id(group) if group else -1
    lstat(path)
    try:
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid)
        if mode is not None:
            os.chmod(path, mode)
    except OverflowError:
        raise BadRequest(f"owner or group id out of range: {owner or group}") from None
    except OSError as exc:
        raise os_error(exc, path) from None
