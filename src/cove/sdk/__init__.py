"""The Cove Python SDK: `Cove` (sync) and `AsyncCove`, with Daytona's names.

`from cove import Cove as Daytona` runs the examples written for Daytona's
SDK. Where things are:

  client.py          `Cove` / `AsyncCove`: configuration, create/get/list/delete
  sandbox.py         `Sandbox` / `AsyncSandbox`: data, lifecycle, `.process`, `.code_interpreter`
  control.py         sandbox control: labels, intervals, TTL, resize, metrics
  process.py         `sandbox.process`: exec, code_run, sessions, logs (+ PTY methods)
  pty.py             PTY methods and `PtyHandle` / `AsyncPtyHandle`
  interpreter.py     `sandbox.code_interpreter`: run_code, contexts
  images.py          `client.images`: build (context sent directly), list, prune
  snapshots.py       `client.snapshots`: create (log followed), list, get, delete, activate
  models.py          what calls return: the wire models, or built from them
  errors.py          the SDK's side of the error tree (`CommandTimeout`...)
  embedded.py        the in-process control plane used when no URL is set
  _base.py           `Call` (a request and its parser), shared by both faces
  _process_calls.py  the requests of `sandbox.process`; `_pty.py` those of PTYs
  _streams.py        WebSocket stream parsers without I/O (logs, interpreter)
  _transport.py      the only I/O: one transport per face
"""

from cove.sdk._base import CoveConfig
from cove.sdk.client import AsyncCove, Cove
from cove.sdk.control import SandboxMetrics
from cove.sdk.errors import CodeTimeout, CommandTimeout, ServerUnreachable
from cove.sdk.fs import (
    AsyncFileSystem,
    FileDownloadRequest,
    FileDownloadResponse,
    FileSystem,
    FileUpload,
)
from cove.sdk.git import AsyncGit, Git
from cove.sdk.interpreter import AsyncCodeInterpreter, CodeInterpreter
from cove.sdk.models import (
    CodeRunParams,
    Command,
    CreateSandboxParams,
    ExecuteResponse,
    ExecutionError,
    ExecutionResult,
    InterpreterContext,
    OutputMessage,
    PtyResult,
    PtySessionInfo,
    PtySize,
    RichResult,
    Session,
    SessionCommandLogsResponse,
    SessionExecuteRequest,
    SessionExecuteResponse,
)
from cove.sdk.process import AsyncProcess, Process
from cove.sdk.pty import AsyncPtyHandle, PtyHandle
from cove.sdk.sandbox import AsyncSandbox, Sandbox
from cove.sdk.snapshots import AsyncSnapshots, Snapshot, Snapshots
from cove.wire.errors import (
    AuthError,
    BadRequest,
    Conflict,
    CoveError,
    Gone,
    NotFound,
    ProcessTimeout,
    SandboxError,
    Timeout,
)

__all__ = [
    "AsyncCodeInterpreter",
    "AsyncCove",
    "AsyncFileSystem",
    "AsyncGit",
    "AsyncProcess",
    "AsyncPtyHandle",
    "AsyncSandbox",
    "AsyncSnapshots",
    "AuthError",
    "BadRequest",
    "CodeInterpreter",
    "CodeRunParams",
    "CodeTimeout",
    "Command",
    "CommandTimeout",
    "Conflict",
    "Cove",
    "CoveConfig",
    "CoveError",
    "CreateSandboxParams",
    "ExecuteResponse",
    "ExecutionError",
    "ExecutionResult",
    "FileDownloadRequest",
    "FileDownloadResponse",
    "FileSystem",
    "FileUpload",
    "Git",
    "Gone",
    "InterpreterContext",
    "NotFound",
    "OutputMessage",
    "Process",
    "ProcessTimeout",
    "PtyHandle",
    "PtyResult",
    "PtySessionInfo",
    "PtySize",
    "RichResult",
    "Sandbox",
    "SandboxError",
    "SandboxMetrics",
    "ServerUnreachable",
    "Session",
    "SessionCommandLogsResponse",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
    "Snapshot",
    "Snapshots",
    "Timeout",
]
