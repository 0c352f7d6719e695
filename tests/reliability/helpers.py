"""Host-side probes for reliability tests: finding a sandbox's processes, waiting."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def sandbox_pids(sandbox_id: str) -> list[int]:
    """Host pids whose cgroup path names the sandbox (agent, monitor and user code)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if f"/{sandbox_id}" in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def agent_pid(sandbox_id: str) -> int:
    """The host pid of the sandbox's agent (PID 1 inside it)."""
    for pid in sandbox_pids(sandbox_id):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"cove.agent" in argv and not argv[0].endswith(b"bwrap"):
            return pid
    raise LookupError(f"no agent process for sandbox {sandbox_id}")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Re-check a condition observable only by asking (an API state), up to a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def warm_pool_ready(client: httpx.Client) -> int:
    """The server's own count of pooled sandboxes ready for a create (its /metrics)."""
    text = client.get("/metrics").text
    match = re.search(r"^cove_warm_pool_ready (\S+)$", text, re.MULTILINE)
    assert match, "no cove_warm_pool_ready gauge in /metrics"
    return int(float(match.group(1)))
