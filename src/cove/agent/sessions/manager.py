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
import time
import uuid
from dataclasses import dataclass, field

from cove.agent.core import DRAIN_AFTER_EXIT, Agent
from cove.agent.proc.cgroups import Group
from cove.agent.proc.spawn import Child, SpawnSpec
from cove.agent.sessions.logs import STDERR, STDOUT, WRITE_FLAGS, CommandLog
from cove.agent.sessions.state import ShellState, fold, read_final, wrap
from cove.wire.errors import BadRequest, Conflict, Gone, NotFound
from cove.wire.protocol.sessions import Command

ENTRYPOINT = "entrypoint"
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# How long TERM has to work before KILL, when a session or the agent ends.
KILL_GRACE = 2.0
# Input waiting to be read by a command is buffered up to this much.
MAX_PENDING_INPUT = 4 * 1024 * 1024


class _Sink(asyncio.BaseProtocol):
    pass


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
    stdin: asyncio.WriteTransport | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

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
        if self.stdin is not None:
            self.stdin.close()  # flushes what is pending first, then EOF
            self.stdin = None


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
        cid = str(uuid.uuid4())
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
        if cmd.child.stdin_fd is not None:
            cmd.stdin = await self._stdin(cmd.child)
        task = asyncio.create_task(self._wait(session, cmd, start, state_path, timeout))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        return cmd

    async def _stdin(self, child: Child) -> asyncio.WriteTransport:
        fd, child.stdin_fd = child.stdin_fd, None
        assert fd is not None
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_write_pipe(_Sink, os.fdopen(fd, "wb", buffering=0))
        return transport

    async def _wait(
        self, session: Session, cmd: SessionCommand, start: ShellState, state_path: str,
        timeout: float | None,
    ) -> None:  # fmt: skip
        assert cmd.child is not None
        child = cmd.child
        try:
            code = await asyncio.wait_for(asyncio.shield(child.exited), timeout or None)
        except TimeoutError:
            cmd.timed_out = True
            self.agent.tracker.kill(cmd.group)
            code = await child.exited
        await _drain(child, cmd.log)
        child.detach_output()
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
        if cmd.exit_code is not None and not cmd.group.pids():
            raise Gone(f"command {cmd.id} has already completed", code="COMMAND_ALREADY_COMPLETED")
        if sig is None:
            self.agent.tracker.kill(cmd.group)
        else:
            self.agent.tracker.signal(cmd.group, sig)

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
        groups = [c.group for c in session.commands.values()]
        for group in groups:
            self.agent.tracker.signal(group, signal.SIGTERM)
            self.agent.tracker.signal(group, signal.SIGCONT)  # a stopped process must see it
        deadline = time.monotonic() + grace
        running = [asyncio.ensure_future(c.done.wait()) for c in session.commands.values()]
        if running:
            await asyncio.wait(running, timeout=grace)
            for fut in running:
                fut.cancel()
        # Background processes have no exit future of ours; wait on pidfds for them.
        while (pids := [p for g in groups for p in g.pids()]) and time.monotonic() < deadline:
            if not await _exits(pids, deadline - time.monotonic()):
                break
        for group in groups:
            self.agent.tracker.kill(group)
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


async def _drain(child: Child, log: CommandLog) -> None:
    """Read what is left in the pipes after the command's exit.

    Background processes may keep the pipes open forever, so this stops after
    DRAIN_AFTER_EXIT; but not while followers hold reading back: the output is
    there, only not read yet.
    """
    while True:
        await asyncio.wait({child.output_done}, timeout=DRAIN_AFTER_EXIT)
        if child.output_done.done() or not log.live.paused:
            return
        await log.live.released()


async def _exits(pids: list[int], timeout: float) -> bool:
    """Wait until these processes have exited (pidfds work for non-children too).

    False when that cannot be watched (no pidfd support): the caller stops waiting.
    """
    loop = asyncio.get_running_loop()
    watched: list[tuple[int, asyncio.Future[None]]] = []
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # already gone
            except OSError:
                return False
            gone: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, gone)
            watched.append((fd, gone))
        if watched:
            await asyncio.wait([f for _, f in watched], timeout=max(timeout, 0))
        return True
    finally:
        for fd, _ in watched:
            loop.remove_reader(fd)
            os.close(fd)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _existing(cwd: str, fallback: str) -> str:
    return cwd if os.path.isdir(cwd) else fallback


def parse_signal(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    name = value.strip().upper()
    if name.isdigit():
        number = int(name)
        if 0 < number < signal.NSIG:
            return number
    else:
        with contextlib.suppress(AttributeError):
            return int(getattr(signal, name if name.startswith("SIG") else "SIG" + name))
    raise BadRequest(f"field 'signal': unknown signal {value!r}")


def entrypoint_text(argv: list[str]) -> str:
    return shlex.join(argv)
