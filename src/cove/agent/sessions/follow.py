"""Live followers of a command's log: every byte, with backpressure on its pipes.

A follower first replays from disk what was written before it attached (the
kept bytes; gaps the cap made are skipped), then takes live output from
memory. While any follower is attached, every chunk the command writes is
held in memory until the slowest follower has taken it (the disk cap does
not apply there). When that exceeds `HIGH_WATER`, the command's pipes are no longer
read (the writer blocks in write(), as on a plain pipe) until the followers
are back under `LOW_WATER`. A follower that leaves releases what it held at
once. With nobody attached nothing is held, so a command nobody follows
never blocks.

A stuck follower holds only its own command, never the agent: it waits on
its own WebSocket, and reading stops only for the pipes of that command.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

Piece = tuple[int, int, bytes]  # (position, stream, data)
Payload = list[bytes]
# Held for the slowest follower before the command's pipes are paused.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
# Payload per follow frame, at most (and at least one chunk): large frames cost
# less per byte on every hop, but some clients reassemble big frames slowly.
FRAME = 256 * 1024


class Replayable(Protocol):
    position: int
    ended: bool

    def replayer(self) -> AbstractContextManager[Callable[[int, int, int], Iterator[Piece]]]: ...


class Follower:
    __slots__ = ("cut_off", "position", "waiter")

    def __init__(self, position: int) -> None:
        self.position = position  # the next byte it needs
        self.waiter: asyncio.Future[None] | None = None
        self.cut_off = False

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


def _no_op() -> None:
    pass


class Fanout:
    def __init__(self, log: Replayable) -> None:
        self.log = log
        self.followers: set[Follower] = set()
        self.chunks: deque[Piece] = deque()  # live output not yet taken by every follower
        self.held = 0  # bytes in `chunks`
        self.pause: Callable[[], None] = _no_op
        self.resume: Callable[[], None] = _no_op
        self.paused = False
        self._released: asyncio.Future[None] | None = None

    def publish(self, start: int, stream: int, data: bytes) -> None:
        if not self.followers:
            return  # nobody reads live: the disk keeps what fits
        self.chunks.append((start, stream, data))
        self.held += len(data)
        for follower in self.followers:
            follower.wake()
        if self.held > HIGH_WATER and not self.paused:
            self.paused = True
            self.pause()

    def end(self) -> None:
        for follower in self.followers:
            follower.wake()

    async def released(self) -> None:
        """Return once the pipes are read again (followers caught up, or left)."""
        if not self.paused:
            return
        if self._released is None or self._released.done():
            self._released = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._released)

    def cut_off_all(self) -> None:
        """Detach every follower (their streams end) and read the pipes again."""
        for follower in self.followers:
            follower.cut_off = True
            follower.wake()
        self.followers.clear()
        self._trim()

    def _take(self, follower: Follower) -> tuple[int, Payload] | None:
        """The next run of one stream's live bytes for `follower`, up to about FRAME."""
        stream = 0
        parts: Payload = []
        size = 0
        for start, kind, data in self.chunks:
            end = start + len(data)
            if end <= follower.position:
                continue
            if parts and (kind != stream or size >= FRAME):
                break
            stream = kind
            skip = max(follower.position - start, 0)
            parts.append(data[skip:] if skip else data)  # a copy only where a resume starts
            size += end - start - skip
            follower.position = end
        if not parts:
            return None
        self._trim()
        return stream, parts

    def _trim(self) -> None:
        """Drop what every follower has taken; read the pipes again once under LOW_WATER."""
        needed = min((f.position for f in self.followers), default=None)
        chunks = self.chunks
        while chunks and (needed is None or chunks[0][0] + len(chunks[0][2]) <= needed):
            self.held -= len(chunks.popleft()[2])
        if self.paused and self.held <= LOW_WATER:
            self.paused = False
            self.resume()
            if self._released is not None and not self._released.done():
                self._released.set_result(None)

    async def follow(self, offset: int) -> AsyncGenerator[tuple[int, Payload], None]:
        follower = Follower(max(offset, 0))
        attached_at = self.log.position
        # Attached before the replay: from here on, live output is held for it.
        self.followers.add(follower)
        try:
            if follower.position < attached_at:
                with self.log.replayer() as replay:
                    for _, stream, data in replay(follower.position, attached_at, FRAME):
                        yield stream, [data]
                        if follower.cut_off:
                            return
                follower.position = max(follower.position, attached_at)
            while not follower.cut_off:
                ended = self.log.ended  # read before taking: nothing is missed at the end
                taken = self._take(follower)
                if taken is not None:
                    yield taken
                elif ended:
                    return
                else:
                    await follower.wait()
        finally:
            self.followers.discard(follower)
            self._trim()
