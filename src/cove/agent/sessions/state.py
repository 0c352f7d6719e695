"""A session's shell state (cwd and exported environment) kept as data.

Each command runs in a fresh `bash` started from this state. An EXIT trap,
which also runs after `exit N` and `set -e` failures, writes the shell's final
`$PWD` and environment (`env -0`) to a state file through a descriptor the
agent opened for it; when the command ends the agent folds what the command
*changed* back into the session. Folding changes rather than replacing the
state means concurrent commands do not undo each other's `cd`/`export`.

What carries over: the working directory and exported variables (including
`unset` of exported ones and exported functions). What does not: plain shell
variables, aliases, options, traps. A command that replaces the shell
(`exec prog`), is killed, or sets its own EXIT trap leaves the state as it was.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

ENV = "/usr/bin/env"
MAX_STATE = 4 * 1024 * 1024  # cwd + environment; a larger one is cut (and may lose a variable)
# Variables bash maintains itself; carrying them over would be noise or wrong.
SHELL_OWNED = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


@dataclass
class ShellState:
    cwd: str
    env: dict[str, str] = field(default_factory=dict)


def wrap(command: str, state_fd: int) -> str:
    """The script bash runs: the state-saving EXIT trap, then the user's command."""
    trap = (
        f"__cove_rc=$?; {{ printf '%s\\0' \"$PWD\"; {ENV} -0; }} >&{state_fd} 2>/dev/null; "
        f"exec {state_fd}>&-; exit $__cove_rc"
    )
    # The trap line is separate so that a syntax error in the command cannot stop it being set.
    return f"trap '{trap.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}' EXIT\n{command}"


def read_final(path: str) -> ShellState | None:
    """The state a command's shell left behind, or None if it wrote none."""
    try:
        # User code can reach the control dir: refuse a symlink or FIFO put in its place.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.pread(fd, MAX_STATE, 0)
    finally:
        os.close(fd)
    parts = raw.split(b"\0")
    if len(parts) < 2 or not parts[0]:
        return None
    env: dict[str, str] = {}
    for item in parts[1:]:
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return ShellState(parts[0].decode("utf-8", "surrogateescape"), env)


def fold(session: ShellState, start: ShellState, final: ShellState) -> None:
    """Apply to `session` what the command changed between `start` and `final`."""
    if final.cwd != start.cwd and os.path.isdir(final.cwd):
        session.cwd = final.cwd
    for key, value in final.env.items():
        if key not in SHELL_OWNED and start.env.get(key) != value:
            session.env[key] = value
    for key in start.env:
        if key not in final.env and key not in SHELL_OWNED:
            session.env.pop(key, None)
