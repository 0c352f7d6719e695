"""`_read_until` leaves the fd number alone once done, on asyncio and on uvloop.

It used to close the pipe itself after its transport had, and uvloop closes
the fd number again later: by then reused by another pipe or socket, which
broke a neighbouring sandbox's start with EBADF.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from cove.runtime.local import _read_until


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
        assert r in opened, "the pipe was never closed"
        for fd in (w, *opened):
            os.close(fd)

    run(scenario())
