"""Walks over trees: content search (`grep -rnF`), name search (glob), replace in files.

Synchronous and possibly long: the routes run them in a worker thread so the
agent keeps serving. Patterns are literal text (content) or shell globs
(names), never regular expressions: the same input finds the same thing
whichever shell or language the caller quoted it from.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Iterator

from cove.agent.files.ops import lstat
from cove.agent.files.paths import PSEUDO, open_regular, os_error
from cove.wire.errors import BadRequest, CoveError
from cove.wire.protocol.files import Match, ReplaceResult

BINARY_SNIFF = 8192  # a NUL byte in the first 8 KiB marks a binary file (as grep -I does)
MAX_MATCHES = 100_000  # the answer is one JSON document in memory
MAX_LINE = 4096  # characters of a matching line kept in the answer
SEARCH_SECONDS = 30.0  # a walk's time budget (a client's timeout is often 60 s)


class Budget:
    """How long one walk may take: a search of `/` must not hold a worker thread (and
    the caller's connection) for minutes. Past it the walk stops and the answer says
    so (`truncated`, the `X-Cove-Truncated` header)."""

    def __init__(self, seconds: float = SEARCH_SECONDS) -> None:
        self.deadline = time.monotonic() + seconds
        self.truncated = False

    def spent(self) -> bool:
        if not self.truncated and time.monotonic() > self.deadline:
            self.truncated = True
        return self.truncated


def _walk(root: str, budget: Budget) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk in name order, pruning the kernel's pseudo file systems below `root`."""
    for parent, dirs, files in os.walk(root):
        if budget.spent():
            return
        dirs[:] = sorted(d for d in dirs if os.path.join(parent, d) not in PSEUDO)
        yield parent, dirs, files


def _files(root: str, budget: Budget) -> Iterator[str]:
    """Regular files under `root` (or `root` itself), links to files included, links
    to directories not followed (no loops)."""
    mode = os.stat(root).st_mode
    if not stat.S_ISDIR(mode):
        if stat.S_ISREG(mode):
            yield root
        return
    for parent, _, files in _walk(root, budget):
        for name in sorted(files):
            path = os.path.join(parent, name)
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                continue  # vanished, or a dangling link
            if regular:  # never a FIFO or a device: opening one may block forever
                yield path


def _is_text(head: bytes) -> bool:
    return b"\0" not in head


def find(root: str, pattern: str, budget: Budget) -> list[Match]:
    if not pattern:
        raise BadRequest("query parameter 'pattern' must not be empty")
    lstat(root)
    needle = pattern.encode("utf-8", "surrogateescape")
    matches: list[Match] = []
    for path in _files(root, budget):
        if budget.spent():
            break
        try:  # swapped for a FIFO since the walk saw it: skipped, not waited on
            with open_regular(path) as f:
                if not _is_text(f.read(BINARY_SNIFF)):
                    continue
                f.seek(0)
                for number, line in enumerate(f, 1):
                    if needle in line:
                        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                        matches.append(Match(path, number, text[:MAX_LINE]))
                        if len(matches) >= MAX_MATCHES:
                            return matches
        except (OSError, CoveError):
            continue  # unreadable, vanished or no longer a file: grep -s skips it too
    return matches


def search(root: str, pattern: str, budget: Budget) -> list[str]:
    """Paths under `root` whose name matches the glob `pattern` (files and directories)."""
    if not pattern:
        raise BadRequest("query parameter 'pattern' must not be empty")
    st = lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise BadRequest(f"not a directory: {root}")
    found: list[str] = []
    for parent, dirs, files in _walk(root, budget):
        for name in sorted(dirs + files):
            if fnmatch.fnmatchcase(name, pattern):
                found.append(os.path.join(parent, name))
    return found


def replace(paths: list[str], pattern: str, new_value: str) -> list[ReplaceResult]:
    """Replace every occurrence in each file; one result per file, failures included.

    A file is rewritten whole through a temporary sibling and a rename, so a
    reader never sees it half-replaced; its mode is kept.
    """
    if not pattern:
        raise BadRequest("field 'pattern' must not be empty")
    old = pattern.encode("utf-8", "surrogateescape")
    new = new_value.encode("utf-8", "surrogateescape")
    results = []
    for path in paths:
        try:
            _replace_one(path, old, new)
        except CoveError as err:
            results.append(ReplaceResult(path, False, err.message))
        else:
            results.append(ReplaceResult(path, True))
    return results


def _replace_one(path: str, old: bytes, new: bytes) -> None:
    try:
        with open_regular(path) as f:  # a FIFO or device is refused, never waited on
            st = os.fstat(f.fileno())
            data = f.read()
        if old not in data:
            return
        real = os.path.realpath(path)  # rewrite the file a link points to, keep the link
        tmp = f"{real}.cove-replace-{os.getpid()}"
        try:
            with open(tmp, "xb") as out:
                out.write(data.replace(old, new))
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.replace(tmp, real)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise os_error(exc, path) from None
