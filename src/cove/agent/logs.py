"""A session command's output on disk, and the live follow stream over it.

Layout, one directory per command (`<control>/sessions/<session>/<cmd>/`):
`stdout` and `stderr` hold each stream's bytes raw; `index` records the order
they arrived in, as 5-byte records (stream: 1 = stdout, 2 = stderr; length:
uint32 big-endian), consecutive chunks of the same stream folded into one
record (its length is rewritten in place), so the index grows only when the
output switches streams. `output` (the interleaving) is rebuilt from the three.
`exit_code` is written last, after all output is on disk.

Caps: each stream keeps at most `cap` bytes and the index at most `cap // 4`;
what does not fit is dropped and counted (`truncated`), so one command cannot
fill the disk.

Follow stream (Daytona's framing, wire page §4.3): every chunk is sent as one
binary frame, a 3-byte marker (`01 01 01` stdout, `02 02 02` stderr) followed
by the payload. The protocol has no escape, so a payload byte 0x01/0x02 that
could form or complete a marker (it is next to the same byte, or ends the
chunk) is sent as 0x1A (ASCII SUB). The substitution keeps lengths, so a
client that counts payload bytes knows its position in the log; the plain GET
returns the bytes unchanged.

Resume: `offset=N` skips the first N bytes of the combined output (stdout and
stderr bytes in arrival order, i.e. the `output` string's bytes); 0 replays
everything. Followers wake on an event per command, never by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import struct
from collections.abc import AsyncIterator

from cove.errors import Gone

STDOUT, STDERR = 1, 2
MARKERS = {STDOUT: b"\x01\x01\x01", STDERR: b"\x02\x02\x02"}
RECORD = struct.Struct(">BI")
CHUNK = 64 * 1024
SUB = 0x1A
# Also safe against a FIFO or symlink planted in the sandbox-writable control dir.
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class CommandLog:
    def __init__(self, directory: str, cap: int) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.dir = directory
        self.cap = cap
        self.index_cap = max(cap // 4, RECORD.size * 16)
        flags = WRITE_FLAGS
        self._fds = {
            STDOUT: os.open(self.path("stdout"), flags | os.O_APPEND, 0o600),
            STDERR: os.open(self.path("stderr"), flags | os.O_APPEND, 0o600),
        }
        self._index = os.open(self.path("index"), flags, 0o600)
        self.sizes = {STDOUT: 0, STDERR: 0}
        self.records = 0
        self._last: tuple[int, int] | None = None  # (stream, length) of the last record
        self.dropped = 0
        self.ended = False
        self._wake = asyncio.Event()

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def _notify(self) -> None:
        # A fresh event per change: every waiter of the old one wakes exactly once.
        self._wake.set()
        self._wake = asyncio.Event()

    def append(self, stream: int, data: bytes) -> None:
        if self.ended or not data:
            return
        room = self.cap - self.sizes[stream]
        same = self._last is not None and self._last[0] == stream
        if not same and (self.records + 1) * RECORD.size > self.index_cap:
            room = 0
        if len(data) > room:
            self.dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        if not data:
            return
        os.write(self._fds[stream], data)
        self.sizes[stream] += len(data)
        if same and self._last is not None:
            length = self._last[1] + len(data)
            os.pwrite(self._index, RECORD.pack(stream, length), (self.records - 1) * RECORD.size)
        else:
            length = len(data)
            os.pwrite(self._index, RECORD.pack(stream, length), self.records * RECORD.size)
            self.records += 1
        self._last = (stream, length)
        self._notify()

    def on_stdout(self, data: bytes) -> None:
        self.append(STDOUT, data)

    def on_stderr(self, data: bytes) -> None:
        self.append(STDERR, data)

    def finish(self, exit_code: int) -> None:
        """All output is on disk: record the exit code and wake every follower."""
        if self.ended:
            return
        self.ended = True
        for fd in (*self._fds.values(), self._index):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):  # informative only; the agent keeps the code
            fd = os.open(self.path("exit_code"), WRITE_FLAGS, 0o600)
            try:
                os.write(fd, f"{exit_code}\n".encode())
            finally:
                os.close(fd)
        self._notify()

    # -- reading ------------------------------------------------------------

    def read_stream(self, name: str, limit: int | None = None) -> bytes:
        """A stream's first `limit` bytes (at most the cap: see `open_log_file`)."""
        fd = open_log_file(self.path(name))
        try:
            return os.pread(fd, min(limit if limit is not None else self.cap, self.cap), 0)
        finally:
            os.close(fd)

    def combined(self, limit: int) -> bytes:
        """The interleaved output, its first `limit` bytes."""
        fds = {
            STDOUT: open_log_file(self.path("stdout")),
            STDERR: open_log_file(self.path("stderr")),
        }
        index = open_log_file(self.path("index"))
        try:
            offsets = {STDOUT: 0, STDERR: 0}
            out = bytearray()
            for stream, length in _records(index, 0, self.index_cap):
                take = min(length, limit - len(out))
                if take <= 0:
                    break
                out += os.pread(fds[stream], take, offsets[stream])
                offsets[stream] += length
            return bytes(out)
        finally:
            for fd in (index, *fds.values()):
                os.close(fd)

    async def follow(self, offset: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, bytes) chunks from `offset` on, live, until the command has ended."""
        # Own descriptors: the stream keeps working if the directory is removed meanwhile.
        index = open_log_file(self.path("index"))
        files = {
            STDOUT: open_log_file(self.path("stdout")),
            STDERR: open_log_file(self.path("stderr")),
        }
        try:
            record, done = 0, 0  # current index record, bytes of it already handled
            starts = {STDOUT: 0, STDERR: 0}  # where the current record begins in its file
            skip = max(offset, 0)
            while True:
                wake = self._wake
                ended = self.ended  # read before the data, so nothing is missed at the end
                progressed = False
                records = _records(index, record, self.index_cap)
                for i, (stream, length) in enumerate(records):
                    while done < length:
                        data = os.pread(
                            files[stream], min(length - done, CHUNK), starts[stream] + done
                        )
                        if not data:
                            break
                        done += len(data)
                        progressed = True
                        if skip >= len(data):
                            skip -= len(data)
                            continue
                        data, skip = data[skip:], 0
                        yield stream, data
                    if i == len(records) - 1:
                        break  # the last record may still grow in place: stay on it
                    starts[stream] += length
                    record, done = record + 1, 0
                if not progressed:
                    if ended:
                        return
                    await wake.wait()
        finally:
            for fd in (index, *files.values()):
                os.close(fd)


def open_log_file(path: str) -> int:
    """Open a log file for reading, refusing what user code may have put in its place.

    The control dir is writable from inside the sandbox: a log swapped for a
    symlink (to /dev/zero, say) or a FIFO (whose open would block the agent)
    is refused, and readers never read past a stream's cap.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise Gone(f"the log file {os.path.basename(path)} is gone or was replaced") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Gone(f"the log file {os.path.basename(path)} was replaced")
    return fd


def _records(fd: int, start: int, limit: int) -> list[tuple[int, int]]:
    """Index records from `start` on, reading at most `limit` bytes of the index."""
    size = min(os.fstat(fd).st_size, limit)
    raw = os.pread(fd, max(size - start * RECORD.size, 0), start * RECORD.size)
    n = len(raw) // RECORD.size
    return [RECORD.unpack_from(raw, i * RECORD.size) for i in range(n)]


def frame(stream: int, data: bytes) -> bytes:
    """One follow-stream frame: the marker, then the payload made marker-free."""
    return MARKERS[stream] + escape(data)


def escape(data: bytes) -> bytes:
    if b"\x01" not in data and b"\x02" not in data:
        return data
    out = bytearray(data)
    last = len(out) - 1
    for i, b in enumerate(data):
        if b in (1, 2) and (i == last or data[i + 1] == b or (i > 0 and data[i - 1] == b)):
            out[i] = SUB
    return bytes(out)
