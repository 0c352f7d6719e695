"""What the agent does to its own process once, at start: prctl, malloc and signal settings."""

from __future__ import annotations

import ctypes
import os
import signal

from cove.agent.proc.output import PIPE_SIZE

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def harden_self() -> None:
    """Become the reaper of orphans, and untraceable by same-uid user code."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return  # no libc to load (not glibc/musl): nothing to set
    if os.getpid() != 1:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # User code runs under our uid; a non-dumpable agent cannot be
    # ptraced or have its /proc/1/mem written by it.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


# Python itself ignores these at start and `subprocess` restores them in each
# child; any other ignored signal came from whoever started the server.
PYTHON_IGNORES = {signal.SIGPIPE, signal.SIGXFSZ}


def reset_inherited_ignores() -> None:
    """Give user processes default signal dispositions, however the server was started.

    An ignored signal survives fork and exec: a server started under `nohup`
    (SIGHUP ignored) or by a shell that ignores SIGINT in the background would
    otherwise hand that to every command, session and forked code run.
    """
    for sig in signal.valid_signals():
        if sig in PYTHON_IGNORES or sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # a real-time or reserved signal Python will not touch
    # A blocked signal survives fork and exec as well: the `ray` backend's node
    # actor runs in a Ray worker thread that blocks SIGINT, which would make
    # every interrupt of a command or an interpreter a silent no-op.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def keep_read_buffers() -> None:
    """Serve pipe-read-sized allocations from heap memory that stays mapped.

    Each read of a command's output allocates up to PIPE_SIZE bytes, and a
    follower may hold a few MiB of them. By default glibc maps such blocks
    fresh, or trims the heap under them, so streaming 1 GiB cost ~80k page
    faults (zeroed pages, cgroup charges) and a fifth of the agent's CPU;
    with these settings ~3k. The price: up to 16 MiB of freed heap kept for
    reuse by an agent that has streamed (an idle one never grew its heap).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt(M_MMAP_THRESHOLD, 2 * PIPE_SIZE)
        libc.mallopt(M_TRIM_THRESHOLD, 16 * PIPE_SIZE)
    except (OSError, AttributeError):
        pass  # not glibc: defaults
