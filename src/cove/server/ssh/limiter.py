"""Failed SSH logins, counted per client address: past a limit, that address waits.

A token has about 190 bits, so guessing one is hopeless; the limit is about
cost, not odds. Every attempt costs the control plane a key exchange (the
expensive part of SSH) and a store lookup, so one address hammering the port
with made-up tokens would take CPU from everyone. After `limit` failures
within `window` seconds an address is refused at once, valid token or not,
until its oldest counted failure is older than the window; the banner says
how long. Memory is bounded: at most `MAX_ADDRESSES` addresses are tracked.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

DEFAULT_LIMIT = 20
DEFAULT_WINDOW = 60.0
MAX_ADDRESSES = 10_000


class FailedLogins:
    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def note(self, address: str) -> None:
        """One more failed login from `address`."""
        now = self.clock()
        if address not in self._failures and len(self._failures) >= MAX_ADDRESSES:
            self._forget_quiet(now)
        times = self._failures.setdefault(address, collections.deque(maxlen=self.limit))
        times.append(now)

    def wait_left(self, address: str) -> float:
        """Seconds until `address` may try again (0: it may now)."""
        times = self._failures.get(address)
        if times is None or len(times) < self.limit:
            return 0.0
        left = times[0] + self.window - self.clock()
        if left <= 0:
            del self._failures[address]
            return 0.0
        return left

    def _forget_quiet(self, now: float) -> None:
        """Drop addresses with no failure in the window; if none is quiet, the oldest."""
        quiet = [a for a, t in self._failures.items() if t[-1] + self.window <= now]
        for address in quiet or [min(self._failures, key=lambda a: self._failures[a][-1])]:
            del self._failures[address]
