"""Terminal helpers for the `cove` CLI: a progress line for slow waits and the
interactive shell relay (local terminal ↔ sandbox PTY)."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

from cove.cli.pty import PtySession

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


def relay(pty: PtySession, stdin_fd: int, stdout_fd: int) -> int:
    """Copy stdin to the PTY and PTY output to stdout until the shell exits."""
    result: list[int] = []
    failure: list[str] = []

    def pump_output() -> None:
        while True:
            event = pty.events()
            if event.data:
                os.write(stdout_fd, event.data)
            elif event.exit_code is not None or event.error is not None:
                if event.error is not None:
                    failure.append(event.error)
                result.append(event.exit_code or 0)
                with contextlib.suppress(OSError):
                    os.write(wake_w, b"x")
                return

    wake_r, wake_w = os.pipe()
    reader = threading.Thread(target=pump_output, daemon=True)
    reader.start()
    previous = None
    if os.isatty(stdin_fd) and threading.current_thread() is threading.main_thread():

        def on_resize(_sig: int, _frame: FrameType | None) -> None:
            with contextlib.suppress(Exception):
                pty.resize(*terminal_size())

        previous = signal.signal(signal.SIGWINCH, on_resize)
    try:
        with raw_terminal(stdin_fd):
            eof = False
            while not result:
                readable, _, _ = select.select([wake_r] + ([] if eof else [stdin_fd]), [], [])
                if stdin_fd in readable:
                    data = os.read(stdin_fd, 4096)
                    if data:
                        pty.send(data)
                    else:
                        eof = True  # piped input ended: the shell decides when to exit
                if wake_r in readable:
                    break
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        pty.close()
        reader.join(5)
        os.close(wake_r)
        os.close(wake_w)
    if failure:
        sys.stderr.write(f"cove: shell failed: {failure[0]}\n")
        return 1
    return result[0] if result else 1
