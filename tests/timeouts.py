"""Test timeouts that fail the one test that overran, not the whole run.

pytest-timeout's signal method cannot be used (the official SDK arms and clears
SIGALRM for its own timeouts) and its thread method ends the process with
`os._exit` on the first overrun, taking every later test with it. Instead, a
test past its timeout (`timeout` in pyproject.toml, 90 s, or
`@pytest.mark.timeout(300)` on a test that takes seconds on an idle machine)
gets `pytest.fail` raised in the main thread through SIGUSR1: it fails, with
a traceback showing where it was stuck, and the run goes on. Only a test
still running `GRACE` seconds later (stuck where no signal handler runs) ends
the run, after naming itself and dumping every thread's stack
(pytest-timeout's own last resort).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import pytest
import pytest_timeout

GRACE = 60.0
SESSION_TEARDOWN = 600.0  # more room for the run's last test (see below)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if not settings.timeout or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's own handling
    main = threading.main_thread().ident
    assert main is not None
    limit = float(settings.timeout)
    if item.session.items and item is item.session.items[-1]:
        # The run's last test also tears down every session fixture (servers,
        # the Ray cluster, their data dirs with whole images): on a loaded host
        # that alone took past 90 s.
        limit += SESSION_TEARDOWN

    def fail_the_test(signum: int, frame: object) -> None:
        pytest.fail(f"{item.nodeid} ran past its {limit:g} s timeout")

    def soft() -> None:
        sys.stderr.write(f"\n+++ {item.nodeid}: past its {limit:g} s timeout, failing it\n")
        signal.pthread_kill(main, signal.SIGUSR1)

    def hard() -> None:
        sys.stderr.write(
            f"\n+++ {item.nodeid}: still running {GRACE:g} s after its {limit:g} s timeout; "
            "ending the run (stacks below)\n"
        )
        pytest_timeout.timeout_timer(item, settings)

    previous = signal.signal(signal.SIGUSR1, fail_the_test)
    timers = [threading.Timer(limit, soft), threading.Timer(limit + GRACE, hard)]
    for timer in timers:
        timer.name = f"timeout {item.nodeid}"
        timer.daemon = True
        timer.start()

    def cancel() -> None:
        for timer in timers:
            timer.cancel()
        signal.signal(signal.SIGUSR1, previous)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    return True
