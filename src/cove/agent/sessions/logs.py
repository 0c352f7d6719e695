"""A session command's output on disk, and the follow stream over it.

Positions: every byte the command writes has a position in its combined
output (stdout and stderr bytes in arrival order), whether the log kept it or
not. `offset=N` on a follow stream means that position, before and past the
cap alike.

Layout, one directory per command (`<control>/sessions/<session>/<cmd>/`):
`stdout` and `stderr` hold each stream's kept bytes raw; `index` records the
order they arrived in, as 5-byte records (kind: 1 = stdout, 2 = stderr,
0 = a gap of bytes the cap dropped; length: uint32 big-endian), consecutive
pieces of the same kind folded into one record (its length is rewritten in
place), so the index grows only when the kind changes. Walking the index gives
every kept byte its position. `exit_code` is written last, after all output
is on disk.

Caps: each stream keeps at most `cap` bytes on disk and the index at most
`cap // 4`; what does not fit is dropped from the log and counted
(`truncated`), so one command cannot fill the disk. When a gap cannot be
recorded any more (index full), nothing more is kept, so that positions stay
right. The plain GET returns the kept bytes (gaps left out).

Live followers (`logfollow`) get every byte, past the cap too: while one is
attached the agent holds output in memory for it and stops reading the
command's pipes when it falls behind, so a fast writer blocks in write() as it
would on a plain pipe. With nobody following, output past the cap is dropped
and the command never blocks.

Follow stream (Daytona's framing, wire page §4.3): every frame is a 3-byte
marker (`01 01 01` stdout, `02 02 02` stderr) followed by payload of that
stream. The protocol has no escape, so a payload byte 0x01/0x02 that could
form or complete a marker (it is next to the same byte, or ends the frame) is
sent as 0x1A (ASCII SUB). The substitution keeps lengths, so a client that
counts payload bytes knows its position; the plain GET returns the bytes
unchanged.

Resume: `offset=N` starts at position N; 0 replays everything. Bytes that are
no longer available (dropped past the cap while nobody was following) are
skipped: the stream goes on with the next byte there is, and the command's
`truncated` says that some were lost. A client counting payload bytes is
behind by the skipped amount only after such a gap.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
from collections.abc import AsyncGenerator, Callable, Iterator

from cove.agent.sessions.follow import Fanout, Payload, Piece
from cove.wire.errors import Gone

GAP, STDOUT, STDERR = 0, 1, 2
MARKERS = {STDOUT: b"\x01\x01\x01", STDERR: b"\x02\x02\x02"}
RECORD = struct.Struct(">BI")
MAX_RECORD = (1 << 32) - 1
# Disk reads while replaying: large, so that a replay is few frames.
READ_SIZE = 256 * 1024
SUB = b"\x1a"
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
        self.position = 0  # bytes of combined output so far, kept or dropped
        self.records = 0
        self._last: tuple[int, int] | None = None  # (kind, length) of the last record
        self._sealed = False  # a gap could not be recorded: keep nothing more
        self.dropped = 0
        self.ended = False
        self.live = Fanout(self)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def watch_pipes(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """How to stop and restart reading the command's output (backpressure)."""
        self.live.pause, self.live.resume = pause, resume

    def append(self, stream: int, data: bytes) -> None:
        if self.ended or not data:
            return
        start = self.position
        self.position += len(data)
        self._keep(stream, data)
        self.live.publish(start, stream, data)

    def on_stdout(self, data: bytes) -> None:
        self.append(STDOUT, data)

    def on_stderr(self, data: bytes) -> None:
        self.append(STDERR, data)

    def _keep(self, stream: int, data: bytes) -> None:
        kept = 0
        if not self._sealed:
            kept = min(len(data), max(self.cap - self.sizes[stream], 0))
            if kept and not self._can_record(stream):
                kept = 0
        if kept:
            os.write(self._fds[stream], data if kept == len(data) else memoryview(data)[:kept])
            self.sizes[stream] += kept
            self._record(stream, kept)
        lost = len(data) - kept
        if lost:
            self.dropped += lost
            if not self._sealed:
                if self._can_record(GAP):
                    self._record(GAP, lost)
                else:
                    self._sealed = True

    def _can_record(self, kind: int) -> bool:
        last = self._last
        if last is not None and last[0] == kind:
            return True  # folds into the last record (or a new one if it overflows)
        return (self.records + 1) * RECORD.size <= self.index_cap

    def _record(self, kind: int, n: int) -> None:
        last = self._last
        if last is not None and last[0] == kind and last[1] + n <= MAX_RECORD:
            length, at = last[1] + n, self.records - 1
        elif (self.records + 1) * RECORD.size > self.index_cap:
            self._sealed = True  # an overflowing fold with a full index: stop keeping
            return
        else:
            length, at = n, self.records
            self.records += 1
        os.pwrite(self._index, RECORD.pack(kind, length), at * RECORD.size)
        self._last = (kind, length)

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
        self.live.end()

    # -- reading ------------------------------------------------------------

    def read_stream(self, name: str, limit: int | None = None) -> bytes:
        """A stream's first `limit` bytes (at most the cap: see `open_log_file`)."""
        fd = open_log_file(self.path(name))
        try:
            return os.pread(fd, min(limit if limit is not None else self.cap, self.cap), 0)
        finally:
            os.close(fd)

    def combined(self, limit: int) -> bytes:
        """The kept interleaved output, its first `limit` bytes."""
        out = bytearray()
        with self.replayer() as replay:
            for _, _, data in replay(0, self.position, min(limit, READ_SIZE)):
                out += data[: limit - len(out)]
                if len(out) >= limit:
                    break
        return bytes(out)

    @contextlib.contextmanager
    def replayer(self) -> Iterator[Callable[[int, int, int], Iterator[Piece]]]:
        """Read kept bytes by position, on descriptors of its own.

        Opened once, so that a replay keeps working if the directory is
        removed meanwhile. `replay(start, end, size)` yields (position, stream,
        bytes) pieces of at most `size` bytes for the kept bytes in
        [start, end), skipping gaps.
        """
        index = open_log_file(self.path("index"))
        files: dict[int, int] = {}
        try:
            for stream in (STDOUT, STDERR):
                files[stream] = open_log_file(self.path("stdout" if stream == STDOUT else "stderr"))

            def replay(start: int, end: int, size: int) -> Iterator[Piece]:
                position, at = 0, {STDOUT: 0, STDERR: 0}  # where each file's record begins
                for kind, length in _records(index, self.index_cap):
                    if position >= end:
                        return
                    lo, hi = max(start, position), min(end, position + length)
                    while kind != GAP and lo < hi:
                        data = os.pread(files[kind], min(hi - lo, size), at[kind] + lo - position)
                        if not data:
                            return  # the file is shorter than its index says: replaced
                        yield lo, kind, data
                        lo += len(data)
                    if kind != GAP:
                        at[kind] += length
                    position += length

            yield replay
        finally:
            for fd in (index, *files.values()):
                os.close(fd)

    def follow(self, offset: int = 0) -> AsyncGenerator[tuple[int, Payload], None]:
        """(stream, payload pieces) from position `offset` on, live, until the command ends."""
        return self.live.follow(offset)


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


def _records(fd: int, limit: int) -> list[tuple[int, int]]:
    """The index's records, reading at most `limit` bytes of it."""
    raw = os.pread(fd, min(os.fstat(fd).st_size, limit), 0)
    return [RECORD.unpack_from(raw, i * RECORD.size) for i in range(len(raw) // RECORD.size)]


# A 0x01/0x02 next to the same byte, or ending the frame, could make or complete a marker.
_MARKER_BYTE = re.compile(rb"(?<=\x01)\x01|\x01(?=\x01)|(?<=\x02)\x02|\x02(?=\x02)|[\x01\x02]\Z")


def escape(data: bytes) -> bytes:
    """The payload made marker-free, lengths kept (a scan, then C-speed substitution)."""
    if b"\x01" not in data and b"\x02" not in data:
        return data
    return _MARKER_BYTE.sub(SUB, data)
