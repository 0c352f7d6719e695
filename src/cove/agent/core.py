"""What every agent feature shares: the `Agent` (config, environment, cwd, ids,
cgroups, the spawner) and `run_captured`, running a command to completion.

The process layer itself (spawning, reaping, the `Child` object) is `proc/`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import itertools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cove.agent.config import AgentConfig
from cove.agent.proc.cgroups import Group, Tracker
from cove.agent.proc.child import Child
from cove.agent.proc.output import CappedOutput, Sink
from cove.agent.proc.reaper import Reaper
from cove.agent.proc.spawn import Spawner, SpawnSpec
from cove.wire.errors import BadRequest, Conflict

# Starts a command in its group with its output sinks (default: `Spawner.spawn`).
Starter = Callable[[Group, Sink, Sink], Awaitable[Child]]


@dataclass
class Captured:
    exit_code: int
    output: CappedOutput
    timed_out: bool


SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


def _bash() -> str | None:
    """bash where Debian puts it, without `shutil` (and its archive modules) at every start."""
    for path in ("/usr/bin/bash", "/bin/bash"):
        if os.access(path, os.X_OK):
            return path
    return None


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.tracker = Tracker(config.cgroup_dir)
        self.reaper = Reaper()
        join_shell = config.join_shell if os.access(config.join_shell, os.X_OK) else None
        self.spawner = Spawner(self.tracker, self.reaper, join_shell)
        self.shell = _bash() or "/bin/sh"
        self._ids = itertools.count(1)
        self._lingering: set[str] = set()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def python(self, what: str) -> str:
        """The sandbox's python3, or a BadRequest saying `what` needs one the image lacks."""
        if not self.config.python:
            raise BadRequest(
                f"{what} needs Python, and this sandbox's image has none (no python3 in "
                "/usr/local/bin or /usr/bin): install python3 in the image or use another image"
            )
        return self.config.python

    def base_env(self) -> dict[str, str]:
        home = self.config.workdir
        env = {
            # ~/.local/bin first: where `pip install`'s user install puts scripts.
            "PATH": f"{home}/.local/bin:" + SYSTEM_PATH,
            "HOME": home,
            # Debian marks its Python "externally managed" and /usr is read-only
            # here anyway: `pip install X` then defaults to a user install in
            # the workspace (~/.local), as a user of a Daytona sandbox expects.
            "PIP_BREAK_SYSTEM_PACKAGES": "1",
            "USER": self.config.user,
            "LOGNAME": self.config.user,
            "LANG": "C.UTF-8",
            "SHELL": self.shell,
            "TMPDIR": "/tmp",
        }
        site = os.path.join(self.config.runtime_dir, "site")
        if os.path.isdir(site):
            env["PYTHONPATH"] = site
            env["MPLCONFIGDIR"] = "/tmp/.matplotlib"
        env.update(self.config.env)
        return env

    def child_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = self.base_env()
        for key, value in (extra or {}).items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise BadRequest(f"invalid environment variable name or value: {key!r}")
            env[key] = value
        return env

    def resolve_cwd(self, cwd: str | None, *, create: bool = True) -> str:
        """Relative paths are under the working directory; a missing one is created."""
        if not cwd:
            return self.config.workdir
        if "\0" in cwd:
            raise BadRequest("field 'cwd' contains a NUL byte")
        if len(cwd) >= 4096:  # PATH_MAX; makedirs would recurse per component first
            raise BadRequest("field 'cwd' is longer than a path can be")
        path = os.path.normpath(os.path.join(self.config.workdir, cwd))
        if os.path.isdir(path):
            return path
        if os.path.exists(path):
            raise BadRequest(f"cwd {cwd!r} is not a directory")
        if not create:
            raise BadRequest(f"cwd {cwd!r} does not exist")
        try:
            os.makedirs(path, exist_ok=True)
        except (OSError, ValueError) as exc:  # ValueError: not encodable (lone surrogates)
            raise BadRequest(f"cwd {cwd!r} does not exist and cannot be created: {exc}") from None
        return path

    def new_group(self, prefix: str) -> Group:
        self._sweep()
        return self.tracker.new_group(self.next_id(prefix))

    def release_group(self, group: Group) -> None:
        """Forget a command's cgroup; it stays while background processes live in it."""
        if group.path is None:
            return
        if group.pids():
            self._lingering.add(group.path)
        else:
            self.tracker.remove(group)

    def _sweep(self) -> None:
        for path in list(self._lingering):
            try:
                os.rmdir(path)
            except OSError as exc:
                if exc.errno != 16:  # EBUSY: still has processes
                    self._lingering.discard(path)
                continue
            self._lingering.discard(path)

    async def run_captured(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        timeout: float | None,
        cap: int | None,
        starter: Starter | None = None,
        via_shell: bool = False,
    ) -> Captured:
        """Run to completion, keeping capped output; on timeout kill the whole tree."""
        # A caller may lower the cap, not raise it: the whole answer passes through
        # the control plane's memory, which every tenant shares.
        limit = self.config.max_output_bytes
        output = CappedOutput(limit if cap is None else max(0, min(cap, limit)))
        group = self.new_group("exec")
        if starter is None:
            spec = SpawnSpec(argv, cwd, env, via_shell=via_shell)
            starter = functools.partial(self.spawner.spawn, spec)
        try:
            child = await starter(group, output.on_stdout, output.on_stderr)
        except (OSError, ValueError) as exc:
            # The command could not start: say why instead of a 500 (E2BIG env, a cwd
            # the user cannot enter, text the OS cannot take, the pids limit reached).
            self.release_group(group)
            if isinstance(exc, OSError) and exc.errno in (errno.EAGAIN, errno.ENOMEM):
                raise Conflict(f"cannot start the command now: {exc.strerror}") from None
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BadRequest(f"cannot start the command: {reason}") from None
        try:
            code = await child.wait(timeout or None)
        except asyncio.CancelledError:
            # The caller went away (client disconnected): leave nothing running.
            child.kill()
            raise
        timed_out = code is None
        if code is None:
            child.kill()
            code = await child.exited
        await child.drain()
        self.release_group(group)
        return Captured(code, output, timed_out)
