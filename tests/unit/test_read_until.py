"""`_read_until` closes its fd exactly once, on asyncio and on uvloop.

It used to read through a pipe transport, and uvloop closes a transport's fd
twice (libuv, then the file object): a number reused in between, by another
pipe or by an rmtree in a worker thread, was closed under its new owner
(EBADF in a neighbouring sandbox's start or delete).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from cove.runtime.local.procs import read_until as _read_until


def _loops() -> list[Callable[[Coroutine[Any, Any, None]], None]]:
    runners: list[Callable[[Coroutine[Any, Any, None]], None]] = [asyncio.run]
    try:
        import uvloop
    except ImportError:  # the `server` extra is optional; make installs it
        return runners
    return [*runners, uvloop.run]


@pytest.mark.parametrize("run", _loops(), ids=lambda r: r.__module__)
def test_the_fd_number_is_not_closed_twice(run: Callable[..., None]) -> None:
    async def scenario() -> None:
        r, w = os.pipe()
        os.write(w, b"ready\nmore")
        assert await _read_until(r, b"\n") == b"ready\n"
        with pytest.raises(OSError):
            os.fstat(r)  # closed by the time it returns
        # New fds take the lowest free numbers, so r's number comes back in one of
        # these two windows: right away, or once the transport's close has run.
        opened = list(os.pipe())
        for _ in range(10):  # let every deferred close run
            await asyncio.sleep(0)
        opened += os.pipe()
        for _ in range(10):
            await asyncio.sleep(0)
        for fd in opened:
            os.fstat(fd)  # EBADF: an old transport closed a reused number
        assert r in opened
        for fd in (w, *opened):
            os.close(fd)

    run(scenario())


@pytest.mark.parametrize("run", _loops(), ids=lambda r: r.__module__)
def test_eof_before_the_marker_returns_what_came(run: Callable[..., None]) -> None:
    async def scenario() -> None:
        r, w = os.pipe()
        os.write(w, b"partial")
        os.close(w)
        assert await _read_until(r, b"}") == b"partial"

    run(scenario())
