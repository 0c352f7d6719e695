"""Terminal helpers for the `cove` CLI: a progress line for slow waits, the
terminal's size, and raw mode (the shell relay itself is in `pty.py`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

FRAMES = "|/-\\"
PROGRESS_AFTER = 1.0  # seconds: quick calls show nothing


@contextlib.contextmanager
def progress(message: str, stream: TextIO | None = None, enabled: bool = True) -> Iterator[None]:
    """Show `message` with a spinner if the wait lasts over a second (TTY only)."""
    out = stream or sys.stderr
    if not enabled or not out.isatty():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        if done.wait(PROGRESS_AFTER):
            return
        i = 0
        # Redrawing the spinner is the point of this loop: it waits on `done`
        # with a timeout only to animate, never to detect a state.
        while not done.wait(0.1):
            out.write(f"\r{FRAMES[i % len(FRAMES)]} {message}")
            out.flush()
            i += 1
        out.write("\r\033[K")
        out.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def terminal_size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.columns, size.lines


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put the local terminal in raw mode (keys go to the sandbox as typed)."""
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
