"""A session command's log in process: positions past the cap, gaps, live followers and
the backpressure they put on the pipes, and the marker escape."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

from cove.agent.sessions import follow as logfollow
from cove.agent.sessions.logs import STDERR, STDOUT, CommandLog, escape


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def collect(log: CommandLog, offset: int = 0) -> list[tuple[int, bytes]]:
    """(stream, bytes) runs of a follow stream, consecutive frames of a stream merged."""
    out: list[tuple[int, bytes]] = []
    async for stream, parts in log.follow(offset):
        data = b"".join(parts)
        if out and out[-1][0] == stream:
            out[-1] = (stream, out[-1][1] + data)
        else:
            out.append((stream, data))
    return out


def test_gaps_keep_positions_and_resumes_skip_what_is_gone(tmp_path: Path) -> None:
    async def test() -> None:
        log = CommandLog(str(tmp_path / "cmd"), cap=10)
        log.append(STDOUT, b"0123456789abcde")  # 5 past the cap: dropped, nobody follows
        log.append(STDERR, b"xyz")  # positions 15..17
        log.append(STDOUT, b"more")  # stdout is full: dropped, 18..21
        log.finish(0)
        assert log.truncated and log.dropped == 9 and log.position == 22
        assert log.combined(100) == b"0123456789xyz"  # the plain GET: kept bytes only
        assert await collect(log) == [(STDOUT, b"0123456789"), (STDERR, b"xyz")]
        assert await collect(log, 12) == [(STDERR, b"xyz")]  # in a gap: the next kept byte
        assert await collect(log, 16) == [(STDERR, b"yz")]  # a position past the cap
        assert await collect(log, 18) == []
        assert await collect(log, 4) == [(STDOUT, b"456789"), (STDERR, b"xyz")]

    run(test)


def test_a_follower_gets_all_live_output_past_the_cap(tmp_path: Path) -> None:
    async def test() -> None:
        log = CommandLog(str(tmp_path / "cmd"), cap=8)
        log.append(STDOUT, b"early")  # before anyone follows: replayed from disk
        whole = asyncio.create_task(collect(log))
        late = asyncio.create_task(collect(log, 100))  # starts past the cap, live only
        await asyncio.sleep(0)  # both attach
        expected = b"early"
        for i in range(50):
            chunk = f"<{i}>".encode()
            log.append(STDOUT if i % 3 else STDERR, chunk)
            expected += chunk
            await asyncio.sleep(0)
        log.finish(0)
        got = await whole
        assert b"".join(d for _, d in got) == expected
        assert b"".join(d for _, d in await late) == expected[100:]
        assert log.read_stream("stdout") == b"early<1>"  # the disk stays capped

    run(test)


class Pipes:
    """Stands in for the command's pipes: records pause/resume."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.resumed = asyncio.Event()

    def pause(self) -> None:
        self.paused = True
        self.pauses += 1
        self.resumed.clear()

    def resume(self) -> None:
        self.paused = False
        self.resumed.set()


def test_a_slow_follower_pauses_the_pipes_and_leaving_releases_them(tmp_path: Path) -> None:
    async def test() -> None:
        log = CommandLog(str(tmp_path / "cmd"), cap=1024)
        pipes = Pipes()
        log.watch_pipes(pipes.pause, pipes.resume)
        chunk = b"z" * 65536
        stream = log.follow(0)
        first = await anext_after(stream, lambda: log.append(STDOUT, chunk))
        assert first[0] == STDOUT
        # The follower takes nothing more: output piles up until the pipes are paused.
        while not pipes.paused:
            log.append(STDOUT, chunk)
        assert log.live.held <= logfollow.HIGH_WATER + len(chunk)
        # Taking output brings it under the low-water mark: reading resumes.
        while not pipes.resumed.is_set():
            await anext(stream)
        assert log.live.held <= logfollow.LOW_WATER
        # Paused again, then the follower leaves: released at once, nothing held.
        while not pipes.paused:
            log.append(STDOUT, chunk)
        await stream.aclose()
        assert pipes.resumed.is_set() and log.live.held == 0
        # With nobody following, output is dropped past the cap and nothing pauses.
        pauses = pipes.pauses
        for _ in range(200):
            log.append(STDOUT, chunk)
        assert pipes.pauses == pauses and log.live.held == 0 and log.truncated

    run(test)


async def anext_after(
    stream: AsyncGenerator[tuple[int, list[bytes]], None], action: Callable[[], None]
) -> tuple[int, list[bytes]]:
    """Attach (the first step of the generator) and then act, then take one item."""
    step = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the follower is attached and waiting
    action()
    return await step


def reference_escape(data: bytes) -> bytes:
    """The escape rule as first written, byte by byte."""
    out = bytearray(data)
    last = len(out) - 1
    for i, b in enumerate(data):
        if b in (1, 2) and (i == last or data[i + 1] == b or (i > 0 and data[i - 1] == b)):
            out[i] = 0x1A
    return bytes(out)


def test_escape_is_unchanged_and_keeps_lengths() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        data = bytes(rng.choice(b"\x00\x01\x02a") for _ in range(rng.randrange(0, 40)))
        assert escape(data) == reference_escape(data), data
    assert escape(b"a\x01\x01\x01b\x02\x02\x02c\n") == b"a\x1a\x1a\x1ab\x1a\x1a\x1ac\n"
    assert escape(b"\x01a\x02b\x01") == b"\x01a\x02b\x1a"
