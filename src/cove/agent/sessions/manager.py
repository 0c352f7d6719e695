"""Sessions and their commands: starting, input, signals, and ending them all.

A session is shell state as data (`session_state`) plus its commands; every
command is a fresh `bash` in its own cgroup (see `cgroups`), so one command,
or a whole session, can be killed with everything it started, including
processes that double-forked or called setsid. Output goes straight to disk
(`logs.CommandLog`); the exit code is recorded only after the output is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

from cove.agent.core import Agent
from cove.agent.proc.cgroups import Group
from cove.agent.proc.child import DRAIN_AFTER_EXIT, KILL_GRACE, Child
from cove.agent.proc.spawn import SpawnSpec
from cove.agent.sessions.logs import STDERR, STDOUT, WRITE_FLAGS, CommandLog
from cove.agent.sessions.state import ShellState, fold, read_final, wrap
from cove.wire.errors import BadRequest, Conflict, Gone, NotFound
from cove.wire.numbers import is_number
from cove.wire.protocol.sessions import Command

ENTRYPOINT = "entrypoint"
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Input waiting to be read by a command is buffered up to this much.
MAX_PENDING_INPUT = 4 * 1024 * 1024


@dataclass
class SessionCommand:
    id: str
    command: str
    log: CommandLog
    group: Group
    suppress_echo: bool = False
    child: Child | None = None
    exit_code: int | None = None
    timed_out: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stdin(self) -> asyncio.WriteTransport | None:
        return self.child.stdin if self.child is not None else None

    def info(self) -> Command:
        return Command(self.id, self.command, self.exit_code, self.timed_out, self.log.truncated)

    def send_input(self, data: bytes) -> None:
        if self.exit_code is not None:
            raise Gone(f"command {self.id} has already completed", code="COMMAND_ALREADY_COMPLETED")
        if self.stdin is None or self.stdin.is_closing():
            raise Gone(f"the stdin of command {self.id} is closed", code="STDIN_CLOSED")
        if self.stdin.get_write_buffer_size() + len(data) > MAX_PENDING_INPUT:
            raise Conflict(f"command {self.id} is not reading its input; try again later")
        self.stdin.write(data)
        if not self.suppress_echo:
            self.log.append(STDOUT, data)

    def close_stdin(self) -> None:
        if self.child is not None:
            self.child.close_stdin()  # flushes what is pending first, then EOF


class Session:
    def __init__(self, sid: str, state: ShellState, log_dir: str) -> None:
        self.id = sid
        self.state = state
        self.log_dir = log_dir
        self.commands: dict[str, SessionCommand] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    def command(self, cid: str) -> SessionCommand:
        cmd = self.commands.get(cid)
        if cmd is None:
            raise NotFound(f"command {cid!r} not found in session {self.id!r}")
        return cmd


class SessionManager:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.root = os.path.join(agent.config.control_dir, "sessions")
        self.sessions: dict[str, Session] = {}
        # Sessions do not outlive the agent: drop the logs of a previous run (restart).
        shutil.rmtree(self.root, ignore_errors=True)

    def default_cwd(self) -> str:
        return default_cwd(self.agent)

    def get(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            raise NotFound(f"session {sid!r} not found")
        return session

    def create(self, sid: str, *, reserved_ok: bool = False) -> Session:
        if not SESSION_ID.match(sid):
            raise BadRequest(
                f"invalid session id {sid!r}: use 1-128 letters, digits, '.', '_' or '-'"
            )
        if sid == ENTRYPOINT and not reserved_ok:
            raise BadRequest("session id 'entrypoint' is reserved for the sandbox's entrypoint")
        if sid in self.sessions:
            raise Conflict(f"session {sid!r} already exists")
        log_dir = os.path.join(self.root, sid)
        shutil.rmtree(log_dir, ignore_errors=True)  # left over from an earlier session of that name
        os.makedirs(log_dir, mode=0o700)
        session = Session(sid, ShellState(self.default_cwd(), self.agent.base_env()), log_dir)
        self.sessions[sid] = session
        return session

    # -- commands ---------------------------------------------------------------

    async def start(
        self,
        session: Session,
        command: str,
        *,
        argv: list[str] | None = None,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = None,
        stdin: bool = False,
        suppress_echo: bool = False,
    ) -> SessionCommand:
        """Start a command; it runs on in a task that records its end."""
        if session.closing:
            raise Gone(f"session {session.id!r} is being deleted", code="SESSION_ENDED")
        # Validate before anything is created: a bad cwd or env is the caller's 400.
        start = ShellState(
            self.agent.resolve_cwd(cwd)
            if cwd
            else _existing(session.state.cwd, self.default_cwd()),
            self.agent.child_env({**session.state.env, **(envs or {})}),
        )
        cid = _random_uuid()
        directory = os.path.join(session.log_dir, cid)
        log = CommandLog(directory, self.agent.config.max_log_bytes)
        with open(os.path.join(directory, "command"), "w") as f:
            f.write(command)
        cmd = SessionCommand(cid, command, log, self.agent.new_group("sess"), suppress_echo)
        session.commands[cid] = cmd
        state_path = os.path.join(directory, "state")
        state_fd = os.open(state_path, WRITE_FLAGS, 0o600)  # pass_fds makes it inheritable
        try:
            spec = SpawnSpec(
                argv or [self.agent.shell, "--noprofile", "--norc", "-c", wrap(command, state_fd)],
                start.cwd,
                start.env,
                stdin_pipe=stdin,
                pass_fds=() if argv else (state_fd,),
                via_shell=not argv,
            )
            cmd.child = await self.agent.spawner.spawn(
                spec, cmd.group, log.on_stdout, log.on_stderr
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            # e.g. an entrypoint that does not exist: a finished command, like a shell's 127.
            why = getattr(exc, "strerror", None) or exc
            log.append(STDERR, f"cove: cannot start {command!r}: {why}\n".encode())
            self._finish(cmd, 127)
            return cmd
        finally:
            os.close(state_fd)
        log.watch_pipes(cmd.child.pause_output, cmd.child.resume_output)
        task = asyncio.create_task(self._wait(session, cmd, start, state_path, timeout))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        return cmd

    async def _wait(
        self, session: Session, cmd: SessionCommand, start: ShellState, state_path: str,
        timeout: float | None,
    ) -> None:  # fmt: skip
        assert cmd.child is not None
        child = cmd.child
        code = await child.wait(timeout or None)
        if code is None:
            cmd.timed_out = True
            child.kill()
            code = await child.exited
        await child.drain()  # waits while followers hold reading back
        final = read_final(state_path)
        if final is not None and not session.closing:
            fold(session.state, start, final)
        self._finish(cmd, code)

    def _finish(self, cmd: SessionCommand, code: int) -> None:
        cmd.close_stdin()
        cmd.log.finish(code)  # output first, then the exit code
        cmd.exit_code = code
        self.agent.release_group(cmd.group)
        cmd.done.set()

    def signal(self, cmd: SessionCommand, sig: int | None) -> None:
        """Signal every process of the command's tree; None kills it outright."""
        child = cmd.child
        if child is None or (cmd.exit_code is not None and not child.group.pids()):
            raise Gone(f"command {cmd.id} has already completed", code="COMMAND_ALREADY_COMPLETED")
        if sig is None:
            child.kill()
        else:
            child.signal(sig)

    # -- ending -----------------------------------------------------------------

    async def delete(self, sid: str) -> None:
        session = self.get(sid)
        session.closing = True
        try:
            await self.terminate(session)
        finally:
            self.sessions.pop(sid, None)
            shutil.rmtree(session.log_dir, ignore_errors=True)

    async def terminate(self, session: Session, grace: float = KILL_GRACE) -> None:
        """SIGTERM everything the session started, wait up to `grace`, then SIGKILL."""
        session.closing = True
        # Finished commands too: what they left in the background is in their cgroups.
        children = [c.child for c in session.commands.values() if c.child is not None]
        deadline = asyncio.get_running_loop().time() + grace
        await asyncio.gather(*(child.terminate(grace) for child in children))
        # Each command records its end (its output drained) before followers are cut off.
        ending = [asyncio.ensure_future(c.done.wait()) for c in session.commands.values()]
        if ending:
            await asyncio.wait(ending, timeout=max(deadline - asyncio.get_running_loop().time(), 0))
            for fut in ending:
                fut.cancel()
        for cmd in session.commands.values():
            cmd.log.live.cut_off_all()  # a stuck follower must not hold the pipes of the dying
        if session.tasks:
            await asyncio.wait(list(session.tasks), timeout=grace + DRAIN_AFTER_EXIT + 1)
        for cmd in session.commands.values():
            self.agent.release_group(cmd.group)

    async def terminate_all(self) -> None:
        sessions = list(self.sessions.values())
        await asyncio.gather(*(self.terminate(s) for s in sessions), return_exceptions=True)


def default_cwd(agent: Agent) -> str:
    """The image's WORKDIR if set and usable (created if missing), else the home directory."""
    try:
        return agent.resolve_cwd(agent.config.session_cwd)
    except BadRequest:
        # e.g. an absolute WORKDIR on the read-only root: keep sessions usable.
        return agent.config.workdir


def _existing(cwd: str, fallback: str) -> str:
    return cwd if os.path.isdir(cwd) else fallback


def parse_signal(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    name = value.strip().upper()
    if is_number(name):
        number = int(name)
        if 0 < number < signal.NSIG:
            return number
    else:
        with contextlib.suppress(AttributeError):
            return int(getattr(signal, name if name.startswith("SIG") else "SIG" + name))
    raise BadRequest(f"field 'signal': unknown signal {value!r}")


def entrypoint_text(argv: list[str]) -> str:
    return shlex.join(argv)


def _random_uuid() -> str:
    """A version-4 UUID string; `uuid` itself would cost every sandbox its imports."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
