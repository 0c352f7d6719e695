"""Toolbox wire models: sessions, their commands and logs, and PTYs (wire page §4).

Daytona's names and shapes; Cove's additions (per-command `cwd`, `envs` and
`timeout`, `timedOut`/`truncated` flags, kill/signal requests) are extra keys
the official SDK ignores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.wire.model import WireModel


@dataclass
class CreateSessionRequest(WireModel):
    session_id: str


@dataclass
class SessionExecuteRequest(WireModel):
    command: str
    run_async: bool | None = None
    # Deprecated Daytona alias of runAsync.
    async_: bool | None = field(default=None, metadata={"wire": "async"})
    suppress_input_echo: bool | None = None
    # Cove: per-command working directory, extra environment and time limit
    # (seconds, 0 or absent = none); they do not change the session's state.
    cwd: str | None = None
    envs: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def is_async(self) -> bool:
        return bool(self.run_async or self.async_)


@dataclass
class SessionExecuteResponse(WireModel):
    cmd_id: str
    exit_code: int | None = None
    output: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    timed_out: bool = False
    truncated: bool = False


@dataclass
class Command(WireModel):
    id: str
    command: str
    # null while the command runs.
    exit_code: int | None = None
    timed_out: bool = False
    truncated: bool = False


@dataclass
class Session(WireModel):
    session_id: str
    commands: list[Command] = field(default_factory=list)


@dataclass
class SessionCommandLogs(WireModel):
    output: str
    stdout: str
    stderr: str
    truncated: bool = False


@dataclass
class SessionInputRequest(WireModel):
    data: str
    # Cove: send `data` as it is. Without it a newline is added when `data` does
    # not end with one (as Daytona does), so "y" answers a `read` as a full line.
    raw: bool = False

    def payload(self) -> bytes:
        data = self.data if self.raw or self.data.endswith("\n") else self.data + "\n"
        return data.encode()


@dataclass
class CommandSignalRequest(WireModel):
    # A signal name ("TERM", "SIGINT") or number ("15"); absent = SIGKILL the
    # whole tree.
    signal: str | None = None


@dataclass
class PtyCreateRequest(WireModel):
    id: str
    cwd: str | None = None
    envs: dict[str, str] = field(default_factory=dict)
    cols: int = 80
    rows: int = 24
    lazy_start: bool = False
    # Cove: a command the terminal runs (`sh -c`-style) instead of the interactive shell.
    command: str | None = None


@dataclass
class PtyResizeRequest(WireModel):
    cols: int
    rows: int


@dataclass
class PtySessionInfo(WireModel):
    id: str
    active: bool
    cols: int
    rows: int
    created_at: str
    cwd: str
    envs: dict[str, str]
    lazy_start: bool = False


@dataclass
class PtySessionList(WireModel):
    sessions: list[PtySessionInfo]
