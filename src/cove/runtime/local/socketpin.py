"""The agent socket the control plane connects to, pinned where the sandbox cannot write.

The agent binds `agent.sock` in the control dir, which the sandbox's user
can change: a symlink planted there would send the control plane (root) to a
neighbour's agent or to any host socket. The host hard-links the socket once
per agent run (without following links) next to the control dir, and keeps
the link only if it names a socket the agent process itself listens on: user
code runs as the same uid and could bind a socket of its own there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from pathlib import Path

from cove.wire.errors import SandboxError

PINNED = "agent.sock"


def pin_agent_socket(base: Path, sandbox_id: str, uid: int | None, pid: int | None) -> str:
    """The pinned socket path of the sandbox in `base` (made now if missing).

    Raises SandboxError when what is there is not the agent's own socket.
    """
    pinned = base / PINNED
    try:
        st = os.lstat(pinned)
        fresh = False
    except FileNotFoundError:
        try:
            os.link(base / "control" / PINNED, pinned, follow_symlinks=False)
        except FileNotFoundError:
            return str(pinned)  # no agent socket: connecting fails, as it should
        except FileExistsError:
            pass  # made meanwhile by another call
        st = os.lstat(pinned)
        fresh = True
    ok = stat.S_ISSOCK(st.st_mode) and (uid is None or st.st_uid == uid)
    if ok and fresh and pid:
        listener = listener_pid(str(pinned))
        if listener is None:  # nobody answers (a dead agent): pin nothing yet
            os.unlink(pinned)
            return str(pinned)
        ok = listener == pid
    if not ok:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pinned)
        raise SandboxError(
            f"sandbox {sandbox_id}: its agent socket was replaced; restart the sandbox"
        )
    return str(pinned)


def unpin(base: Path) -> None:
    """Forget the last run's sockets (the agent binds a new one at start)."""
    for stale in (base / "control" / PINNED, base / PINNED):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def listener_pid(path: str) -> int | None:
    """The pid (in our namespace) of the process listening on a unix socket, if any."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.setblocking(False)  # a full backlog must not block the event loop
        try:
            s.connect(path)
        except OSError:  # refused, or a backlog that takes no one: not verifiable now
            return None
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", creds)
    return int(pid)
