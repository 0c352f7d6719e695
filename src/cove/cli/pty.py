"""`cove shell`: the local terminal relayed to a sandbox PTY (wire page §4.4).

It uses the SDK's public PTY API only (`sandbox.process.create_pty_session`
and its `PtyHandle`): a reader thread iterates the handle and writes the
output to stdout; the main thread forwards stdin keystrokes (raw mode on a
terminal) and resizes the PTY on SIGWINCH. The shell's exit code is the
command's.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import uuid
from types import FrameType

from cove.cli.terminal import raw_terminal, terminal_size
from cove.sdk import CoveError, Gone, PtyHandle, PtySize, Sandbox

log = logging.getLogger(__name__)
# Bounds the wait for the output thread once the socket is closed (its close
# handshake has its own timeout, shorter than this).
READER_JOIN = 15.0


def open_shell(sb: Sandbox, cwd: str | None, envs: dict[str, str] | None) -> PtyHandle:
    cols, rows = terminal_size()
    return sb.process.create_pty_session(
        f"cove-shell-{uuid.uuid4().hex[:8]}", cwd=cwd, envs=envs, pty_size=PtySize(rows, cols)
    )


def relay(pty: PtyHandle, stdin_fd: int, stdout_fd: int) -> int:
    """Copy stdin to the PTY and PTY output to stdout until the shell exits."""
    wake_r, wake_w = os.pipe()

    def pump_output() -> None:
        try:
            for data in pty:
                os.write(stdout_fd, data)
        except OSError:  # our stdout went away: nothing left to show the output on
            log.exception("writing the shell's output failed")
        finally:
            os.write(wake_w, b"x")  # the main loop stops waiting on stdin

    reader = threading.Thread(target=pump_output, name="cove-shell-output", daemon=True)
    reader.start()
    previous = None
    if os.isatty(stdin_fd) and threading.current_thread() is threading.main_thread():

        def on_resize(_sig: int, _frame: FrameType | None) -> None:
            cols, rows = terminal_size()
            try:
                pty.resize(PtySize(rows, cols))
            except CoveError as err:  # the shell keeps its old size; it still works
                log.warning("resizing the shell failed: %s", err)

        previous = signal.signal(signal.SIGWINCH, on_resize)
    try:
        with raw_terminal(stdin_fd):
            _forward_keys(pty, stdin_fd, wake_r)
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        pty.disconnect()
        reader.join(READER_JOIN)
        if not reader.is_alive():  # else it may still write to wake_w: leave both open
            os.close(wake_r)
            os.close(wake_w)
    if pty.exit_code is None:
        sys.stderr.write(f"cove: shell failed: {pty.error or 'the connection closed'}\n")
        return 1
    return pty.exit_code


def _forward_keys(pty: PtyHandle, stdin_fd: int, wake_r: int) -> None:
    """Until the output thread says the shell ended."""
    eof = False
    while True:
        readable, _, _ = select.select([wake_r] + ([] if eof else [stdin_fd]), [], [])
        if wake_r in readable:
            return
        data = os.read(stdin_fd, 4096)
        if not data:
            eof = True  # piped input ended: the shell decides when to exit
            continue
        try:
            pty.send_input(data)
        except Gone:  # the shell exited meanwhile; the output thread reports it
            return
