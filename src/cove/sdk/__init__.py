"""The Cove Python SDK: `Cove` (sync) and `AsyncCove`, with Daytona's names.

`from cove import Cove as Daytona` runs the examples written for Daytona's
SDK; see `client.py` for configuration and embedded mode.
"""

from cove.sdk._base import CoveConfig
from cove.sdk.client import AsyncCove, Cove
from cove.sdk.errors import CodeTimeout, CommandTimeout, ServerUnreachable
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
    "AsyncProcess",
    "AsyncPtyHandle",
    "AsyncSandbox",
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
    "ServerUnreachable",
    "Session",
    "SessionCommandLogsResponse",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
    "Timeout",
]
