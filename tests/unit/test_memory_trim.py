"""The server gives freed heap back: when idle (collection and trim), and when never idle
(trim only, in a worker thread, at most every `busy_interval`)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from cove.server import memory


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trims: list[str] = []  # the thread each trim ran in
        self.collections = 0
        self.trimmed = threading.Event()
        monkeypatch.setattr(memory, "_malloc_trim", self.trim)
        monkeypatch.setattr(memory.gc, "collect", self.collect)

    def trim(self) -> None:
        self.trims.append(threading.current_thread().name)
        self.trimmed.set()

    def collect(self) -> int:
        self.collections += 1
        return 0

    async def wait_trim(self) -> None:
        assert await asyncio.to_thread(self.trimmed.wait, 10), "no trim within 10 s"
        self.trimmed.clear()


def holding_app() -> tuple[Any, asyncio.Event]:
    """An app whose `/hold` requests stay in flight until the event is set."""
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/hold":
            await release.wait()

    return app, release


async def requests(mw: memory.IdleTrim, n: int) -> None:
    for _ in range(n):
        await mw({"type": "http", "path": "/"}, None, None)


def test_a_server_never_idle_trims_the_heap_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder(monkeypatch)

    async def main() -> None:
        app, release = holding_app()
        mw = memory.IdleTrim(app, delay=0.01, min_requests=10, busy_interval=3600)
        held = asyncio.create_task(mw({"type": "http", "path": "/hold"}, None, None))
        while mw.in_flight == 0:  # the held request has entered
            await asyncio.sleep(0)
        await requests(mw, 10)
        await rec.wait_trim()
        assert rec.trims[0] != threading.current_thread().name  # not on the loop
        assert rec.collections == 0  # a full collection would stall the loop
        await requests(mw, 50)  # within busy_interval: no second trim
        assert len(rec.trims) == 1
        release.set()
        await held

    asyncio.run(main())


def test_an_idle_server_collects_and_trims_after_the_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder(monkeypatch)

    async def main() -> None:
        app, _ = holding_app()
        mw = memory.IdleTrim(app, delay=0.01, min_requests=10, busy_interval=3600)
        await requests(mw, 9)
        assert mw._timer is None  # fewer than min_requests: nothing to give back
        await requests(mw, 1)
        await rec.wait_trim()
        assert rec.collections == 1 and len(rec.trims) == 1

    asyncio.run(main())
