"""What the SDK hands back to callers, named as in Daytona's SDK.

Plain dataclasses with snake_case attributes (Daytona's names, so code written
for its SDK reads them unchanged), built from the wire models in
`cove.wire.protocol` or from the JSON of endpoints that have no shared model yet.
Cove's additions (`stdout`, `stderr`, `timed_out`, `truncated`, rich
`results`) are extra attributes; nothing Daytona code reads is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cove.wire.protocol import ExecuteResponse as WireExecuteResponse


@dataclass
class ExecutionArtifacts:
    """Daytona's `response.artifacts`: the stdout again, and charts (none yet)."""

    stdout: str = ""
    charts: list[Any] = field(default_factory=list)


@dataclass
class ExecuteResponse:
    """The result of `process.exec` and `process.code_run`.

    `result` is Daytona's: stdout and stderr combined in arrival order.
    Cove adds the two streams apart, `timed_out` (only ever true on the
    `response` a `ProcessTimeout` carries) and `truncated` (the per-stream
    output cap was hit; the output is cut, not lost wholesale).
    """

    exit_code: int
    result: str
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False
    artifacts: ExecutionArtifacts = field(default_factory=ExecutionArtifacts)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ExecuteResponse:
        if "exitCode" not in data and isinstance(data.get("code"), int):
            data = {**data, "exitCode": data["code"]}  # older servers' field name
        wire = WireExecuteResponse.from_wire({"result": "", **data})
        charts = data.get("artifacts", {}).get("charts") if isinstance(data, dict) else None
        return cls(
            exit_code=wire.exit_code,
            result=wire.result,
            stdout=wire.stdout,
            stderr=wire.stderr,
            timed_out=wire.timed_out,
            truncated=wire.truncated,
            artifacts=ExecutionArtifacts(stdout=wire.stdout, charts=list(charts or [])),
        )


@dataclass
class CodeRunParams:
    """Daytona's `CodeRunParams`: extra argv and environment for `code_run`."""

    argv: list[str] | None = None
    env: dict[str, str] | None = None


@dataclass
class OutputMessage:
    """One chunk of interpreter output, as passed to `on_stdout` / `on_stderr`."""

    output: str


@dataclass
class ExecutionError:
    """A Python exception raised by code run in the interpreter."""

    name: str
    value: str
    traceback: str = ""


@dataclass
class RichResult:
    """A rich output of interpreter code: the last expression's value, a plot...

    `data` is keyed by MIME type, as in Jupyter: `text/plain`, `text/html`,
    `image/png` (base64), `application/json`. `is_main_result` marks the value
    of the cell's last expression (as opposed to e.g. a `display()` call).
    """

    data: dict[str, Any]
    is_main_result: bool = False

    @property
    def text(self) -> str | None:
        value = self.data.get("text/plain")
        return value if isinstance(value, str) else None

    @property
    def png(self) -> str | None:
        value = self.data.get("image/png")
        return value if isinstance(value, str) else None

    @property
    def html(self) -> str | None:
        value = self.data.get("text/html")
        return value if isinstance(value, str) else None


@dataclass
class ExecutionResult:
    """The outcome of `code_interpreter.run_code`."""

    stdout: str = ""
    stderr: str = ""
    error: ExecutionError | None = None
    results: list[RichResult] = field(default_factory=list)
    # Set when the run was stopped by its timeout or an interrupt (Cove).
    interrupted: bool = False


@dataclass
class InterpreterContext:
    id: str
    cwd: str
    language: str
    active: bool
    created_at: str

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> InterpreterContext:
        return cls(
            id=str(data["id"]),
            cwd=str(data.get("cwd", "")),
            language=str(data.get("language", "python")),
            active=bool(data.get("active", True)),
            created_at=str(data.get("createdAt", "")),
        )


@dataclass
class SessionExecuteRequest:
    """Daytona's request for `execute_session_command`.

    `run_async=True` returns at once with the command id; follow it with
    `get_session_command_logs_async` or poll `get_session_command`.
    Cove adds `cwd`, `env` and `timeout` per command.
    """

    command: str
    run_async: bool = False
    suppress_input_echo: bool = False
    var_async: bool | None = None  # Daytona's deprecated name for run_async
    cwd: str | None = None
    env: dict[str, str] | None = None
    timeout: float | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"command": self.command}
        if self.run_async or self.var_async:
            body["runAsync"] = True
        if self.suppress_input_echo:
            body["suppressInputEcho"] = True
        if self.cwd is not None:
            body["cwd"] = self.cwd
        if self.env:
            body["envs"] = dict(self.env)
        if self.timeout is not None:
            body["timeout"] = self.timeout
        return body


@dataclass
class SessionExecuteResponse:
    cmd_id: str
    exit_code: int | None = None
    output: str | None = None
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SessionExecuteResponse:
        return cls(
            cmd_id=str(data["cmdId"]),
            exit_code=data.get("exitCode"),
            output=data.get("output"),
            stdout=data.get("stdout") or "",
            stderr=data.get("stderr") or "",
        )


@dataclass
class Command:
    id: str
    command: str
    exit_code: int | None = None  # None while it runs
    timed_out: bool = False  # Cove: its per-command timeout killed it
    truncated: bool = False  # Cove: the log cap dropped output

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Command:
        return cls(
            id=str(data["id"]),
            command=str(data.get("command", "")),
            exit_code=data.get("exitCode"),
            timed_out=bool(data.get("timedOut", False)),
            truncated=bool(data.get("truncated", False)),
        )


@dataclass
class Session:
    session_id: str
    commands: list[Command] = field(default_factory=list)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Session:
        return cls(
            session_id=str(data["sessionId"]),
            commands=[Command.from_wire(c) for c in data.get("commands") or []],
        )


@dataclass
class SessionCommandLogsResponse:
    output: str = ""
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SessionCommandLogsResponse:
        return cls(
            output=data.get("output") or "",
            stdout=data.get("stdout") or "",
            stderr=data.get("stderr") or "",
        )


@dataclass
class CreateSandboxParams:
    """What `create()` accepts (also as keyword arguments).

    Daytona's `CreateSandboxFromSnapshotParams` has the same attribute names,
    so one of those may be passed as is.
    """

    language: str | None = None
    env_vars: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    name: str | None = None
    cpu: int | None = None
    memory: int | None = None  # GiB
    disk: int | None = None  # GiB
    auto_stop_interval: int | None = None  # minutes, 0 = never
    auto_delete_interval: int | None = None  # minutes; <0 never, 0 on stop
    entrypoint: list[str] | None = None
    public: bool | None = None
