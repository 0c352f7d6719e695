"""The host's files in a sandbox's control directory: the agent's config and log.

The control directory is bind-mounted writable into the sandbox (the agent
keeps its socket and command logs there), so its user can put a symlink, a
FIFO or a directory where the host expects its own file. Every host access
here refuses to follow links and to block on what is not a regular file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from pathlib import Path

from cove.agent.config import AgentConfig
from cove.wire.errors import SandboxError

CONFIG_FILE = "agent.json"
LOG_FILE = "agent.log"
LOG_TAIL_BYTES = 16384


def open_control_file(path: Path, flags: int) -> int:
    """Open (creating) a host-written file of the control dir, as a regular file only.

    Root following a planted link would write or chown a host file of the
    user's choosing (a FIFO would block the event loop): whatever is not a
    plain file is removed first, and O_NOFOLLOW closes the race with a
    re-planted link.
    """
    for _ in range(3):
        try:
            fd = os.open(
                path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644
            )
        except OSError:  # ELOOP (a link), ENXIO (a FIFO), EISDIR...
            fd = -1
        if fd >= 0:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(path).st_mode):
                shutil.rmtree(path)  # never follows links inside
            else:
                os.unlink(path)
    raise SandboxError(f"cannot write {path.name} in the sandbox's control directory")


def write_config(control: Path, config: AgentConfig, uid: int) -> None:
    """Write the agent's config (its typed model's wire form), owned by the sandbox's uid."""
    fd = open_control_file(control / CONFIG_FILE, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps(config.to_wire()).encode())
        os.fchown(f.fileno(), uid, uid)


def open_log(control: Path) -> int:
    """The agent's log, opened for appending (its stdout and stderr)."""
    return open_control_file(control / LOG_FILE, os.O_WRONLY | os.O_APPEND)


def log_tail(control: Path, lines: int = 5) -> str:
    """The last `lines` of the agent's log, joined by ' | ' (what a person reads first)."""
    try:  # not through a link the sandbox planted, and only the end of it
        fd = os.open(control / LOG_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "no agent log"
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "no agent log"
        f.seek(max(0, os.fstat(fd).st_size - LOG_TAIL_BYTES))
        text = f.read().decode(errors="replace")
    tail = text.strip().splitlines()[-lines:]
    return " | ".join(tail) or "the agent log is empty"
