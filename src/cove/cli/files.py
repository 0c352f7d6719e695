"""`cove cp` and `cove ls`: files in and out of a sandbox, through the SDK's `sandbox.fs`.

`cove cp SRC DST` copies like `docker cp`: one side is `SANDBOX:PATH`, the
other a local path; a directory is copied whole, into DST when DST is an
existing directory, else as DST. On a terminal a transfer that lasts over a
second shows a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import stat
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from cove.cli.terminal import progress
from cove.sdk import Cove, FileUpload, Sandbox
from cove.wire.errors import NotFound

PROGRESS_AFTER = 1.0  # seconds before a bar appears
REDRAW_EVERY = 0.1
MAX_DEPTH = 64  # the agent lists at most this deep in one call


def _client(args: argparse.Namespace) -> Cove:
    with progress("starting Cove", enabled=not args.json):
        return Cove(api_url=args.api_url, api_key=args.api_key, keep=True)


@dataclass
class Side:
    sandbox: str | None  # None: the local machine
    path: str


def parse_side(text: str) -> Side:
    """`SANDBOX:PATH` or a local path (anything with a `/` before its first `:` is local)."""
    head, colon, rest = text.partition(":")
    if colon and head and "/" not in head:
        return Side(head, rest or ".")
    return Side(None, text)


class Progress:
    """A one-line bar on a terminal, drawn only once a transfer has lasted a second."""

    def __init__(self, total: int, label: str, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.enabled = self.out.isatty()
        self.total, self.label = max(total, 1), label
        self.start = time.monotonic()
        self.drawn_at = 0.0
        self.done = 0

    def __call__(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if not self.enabled or now - self.start < PROGRESS_AFTER or now - self.drawn_at < 0.1:
            return
        self.drawn_at = now
        share = min(1.0, done / self.total)
        bar = "#" * int(share * 30)
        rate = done / (now - self.start) / (1 << 20)
        self.out.write(f"\r{self.label} [{bar:<30}] {share:4.0%} {rate:7.1f} MiB/s")
        self.out.flush()

    def close(self) -> None:
        if self.drawn_at:
            self.out.write("\r\033[K")
            self.out.flush()


def _remote_is_dir(sb: Sandbox, path: str) -> bool | None:
    """True/False for an existing entry, None for a missing one."""
    try:
        return sb.fs.get_file_info(path).is_dir
    except NotFound:
        return None


def _target(dst: str, name: str, dst_is_dir: bool | None) -> str:
    return os.path.join(dst, name) if dst_is_dir or dst.endswith("/") else dst


def upload(sb: Sandbox, src: str, dst: str) -> int:
    name = os.path.basename(os.path.normpath(src))
    root = _target(dst, name, _remote_is_dir(sb, dst))
    files: list[FileUpload] = []
    folders: list[str] = []
    total = 0
    if os.path.isdir(src):
        folders.append(root)
        for parent, dirs, names in os.walk(src):
            rel = os.path.relpath(parent, src)
            base = root if rel == "." else f"{root}/{rel}"
            folders += [f"{base}/{d}" for d in sorted(dirs)]
            for n in sorted(names):
                local = os.path.join(parent, n)
                if stat.S_ISREG(os.stat(local).st_mode):
                    files.append(FileUpload(local, f"{base}/{n}"))
                    total += os.path.getsize(local)
    else:
        files.append(FileUpload(src, root))
        total = os.path.getsize(src)
    # An upload creates its files' parents; only empty directories need asking for
    # (`docker cp` copies them too).
    implied: set[str] = set()
    for f in files:
        parent = posixpath.dirname(f.destination)
        while parent and parent not in implied:
            implied.add(parent)
            parent = posixpath.dirname(parent)
    for folder in folders:
        if folder not in implied:
            sb.fs.create_folder(folder, "755")
    bar = Progress(total, f"{src} -> {sb.id}:{root}")
    try:
        if files:
            sb.fs.upload_files(files, on_progress=bar)
    finally:
        bar.close()
    return total


def download(sb: Sandbox, src: str, dst: str) -> int:
    info = sb.fs.get_file_info(src)
    name = os.path.basename(os.path.normpath(src))
    root = _target(dst, name, os.path.isdir(dst) or None)
    if not info.is_dir:
        pairs = [(src, root, info.size)]
    else:
        os.makedirs(root, exist_ok=True)
        pairs = []
        prefix = (info.path or src).rstrip("/") + "/"
        for entry in sb.fs.list_files(src, depth=MAX_DEPTH):
            rel = (entry.path or "").removeprefix(prefix)
            local = os.path.join(root, rel)
            if entry.is_dir:
                os.makedirs(local, exist_ok=True)
            elif entry.mode.startswith("-"):  # regular files; links and devices are skipped
                pairs.append((f"{prefix}{rel}", local, entry.size))
    total = sum(size for _, _, size in pairs)
    bar = Progress(total, f"{sb.id}:{src} -> {root}")
    done = 0
    try:
        for remote, local, _ in pairs:
            os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
            tmp = f"{local}.cove-part"
            try:
                with open(tmp, "wb") as f:
                    for data in sb.fs.download_file_stream(remote):
                        f.write(data)
                        done += len(data)
                        bar(done)
                os.replace(tmp, local)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
    finally:
        bar.close()
    return total


def cp_command(args: argparse.Namespace) -> int:
    src, dst = parse_side(args.src), parse_side(args.dst)
    if (src.sandbox is None) == (dst.sandbox is None):
        raise ValueError("one side of `cove cp` is SANDBOX:PATH and the other a local path")
    if src.sandbox is None and not os.path.exists(src.path):
        raise ValueError(f"no such local file or directory: {src.path}")
    client = _client(args)
    started = time.monotonic()
    if dst.sandbox is not None:
        sb = client.get(dst.sandbox)
        total = upload(sb, src.path, dst.path)
    else:
        assert src.sandbox is not None
        sb = client.get(src.sandbox)
        total = download(sb, src.path, dst.path)
    if args.json:
        seconds = time.monotonic() - started
        print(json.dumps({"bytes": total, "seconds": round(seconds, 3)}))
    return 0


def ls_command(args: argparse.Namespace) -> int:
    sb = _client(args).get(args.sandbox)
    entries = sb.fs.list_files(args.path)
    if args.json:
        print(json.dumps([e.to_wire() for e in entries], indent=2))
        return 0
    width = max((len(str(e.size)) for e in entries), default=1)
    for e in entries:
        when = (e.modified_at or "")[:16].replace("T", " ")
        name = e.name + ("/" if e.is_dir else "")
        print(f"{e.mode} {e.owner:<8} {e.group:<8} {e.size:>{width}} {when} {name}")
    return 0
