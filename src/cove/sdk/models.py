"""What the SDK hands back to callers, named as in Daytona's SDK.

Every answer is parsed by a wire model of `cove.wire.protocol` (the classes
the agent and the server send), never read from the raw JSON here:

- the same thing on both sides is one class, re-exported: `Command`,
  `Session`, `InterpreterContext`, `PtySessionInfo`;
- where Daytona's name or defaults differ, a subclass of the wire model:
  `SessionExecuteResponse`, `SessionCommandLogsResponse`;
- where the SDK hands back a richer object, it is built from the parsed wire
  model: `ExecuteResponse` (with Daytona's `artifacts`).

The rest are the SDK's own: request parameters (`SessionExecuteRequest`,
`CodeRunParams`, `CreateSandboxParams`, `PtySize`), interpreter results, and
`PtyResult`. Attributes are snake_case, Daytona's names, so code written for
its SDK reads them unchanged; Cove's additions (`stdout`, `stderr`,
`timed_out`, `truncated`, rich `results`) are extra attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cove.sdk._base import wire_body
from cove.wire.protocol import CodeRunResponse, SessionCommandLogs
from cove.wire.protocol import ExecuteResponse as WireExecuteResponse
from cove.wire.protocol import SessionExecuteRequest as WireSessionExecuteRequest
from cove.wire.protocol import SessionExecuteResponse as WireSessionExecuteResponse
from cove.wire.protocol.interpreter import InterpreterContext
from cove.wire.protocol.sessions import Command, PtySessionInfo, Session

__all__ = [
    "CodeRunParams",
    "Command",
    "CreateSandboxParams",
    "ExecuteResponse",
    "ExecutionArtifacts",
    "ExecutionError",
    "ExecutionResult",
    "InterpreterContext",
    "OutputMessage",
    "PtyResult",
    "PtySessionInfo",
    "PtySize",
    "RichResult",
    "Session",
    "SessionCommandLogsResponse",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
]


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
    `response` a `CommandTimeout` carries) and `truncated` (the per-stream
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
    def of(cls, wire: WireExecuteResponse) -> ExecuteResponse:
        """Built from the parsed wire answer (a code-run answer also has charts)."""
        charts = wire.artifacts.get("charts") if isinstance(wire, CodeRunResponse) else None
        return cls(
            exit_code=wire.exit_code,
            result=wire.result,
            stdout=wire.stdout,
            stderr=wire.stderr,
            timed_out=wire.timed_out,
            truncated=wire.truncated,
            artifacts=ExecutionArtifacts(
                stdout=wire.stdout, charts=list(charts) if isinstance(charts, list) else []
            ),
        )

    @classmethod
    def from_wire(cls, data: Any) -> ExecuteResponse:
        """Parse an exec or code-run answer (through the wire's `CodeRunResponse`)."""
        return cls.of(CodeRunResponse.from_wire(data, "response"))


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

    @property
    def is_async(self) -> bool:
        return bool(self.run_async or self.var_async)

    def to_wire(self) -> dict[str, Any]:
        wire = WireSessionExecuteRequest(
            command=self.command,
            run_async=True if self.is_async else None,
            suppress_input_echo=True if self.suppress_input_echo else None,
            cwd=self.cwd,
            envs=dict(self.env or {}),
            timeout=self.timeout,
        )
        return wire_body(wire)


@dataclass
class SessionExecuteResponse(WireSessionExecuteResponse):
    """The wire model, with Daytona's empty strings where a stream is absent.

    `timed_out` is true on the `response` a `CommandTimeout` carries (the
    command's `timeout` killed it); `truncated` says the output cap cut it.
    """

    stdout: str = ""
    stderr: str = ""


@dataclass
class SessionCommandLogsResponse(SessionCommandLogs):
    """Daytona's name for the wire's `SessionCommandLogs` (`truncated` is Cove's)."""

    output: str = ""
    stdout: str = ""
    stderr: str = ""


@dataclass
class PtySize:
    """A terminal's size, as Daytona's `PtySize` (1..1000 each)."""

    rows: int
    cols: int


@dataclass
class PtyResult:
    """How a PTY ended: its shell's exit code (None if not yet), or why it failed."""

    exit_code: int | None = None
    error: str | None = None


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
    # Egress policy (Daytona's names): lists are comma-separated strings.
    network_block_all: bool | None = None
    network_allow_list: str | None = None  # CIDRs
    domain_allow_list: str | None = None  # domains, `*.` wildcards
    outbound_proxy_url: str | None = None  # sets HTTP(S)_PROXY inside
    network_deny_list: str | None = None  # Cove: CIDRs refused
    snapshot: str | None = None  # an image by name: a snapshot or a built tag
    ephemeral: bool | None = None  # deleted as soon as it stops
    linked_sandbox: str | None = None  # id or name of the owner this one follows
    # An image to build and run on: a reference, or an `Image` builder (the
    # official SDK's: anything with `dockerfile()`); its build log goes to
    # create's `on_snapshot_create_logs`.
    image: Any = None
