"""Cove: self-hosted sandboxes for untrusted code.

The SDK names are loaded lazily: the agent imports `cove.agent` inside every
sandbox with the standard library alone, and must not pull in the SDK's
dependencies through this package's `__init__`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_SDK_NAMES = {
    "Cove",
    "AsyncCove",
    "Sandbox",
    "AsyncSandbox",
    "OutputMessage",
    "SessionExecuteRequest",
    "ExecuteResponse",
    "ExecutionResult",
    "CoveConfig",
    "CodeRunParams",
    "CreateSandboxParams",
    "ExecutionError",
    "RichResult",
    "Session",
    "Command",
    "SessionExecuteResponse",
    "SessionCommandLogsResponse",
    "InterpreterContext",
    "CommandTimeout",
    "CodeTimeout",
    "ServerUnreachable",
    "PtySize",
    "PtyResult",
    "PtyHandle",
    "AsyncPtyHandle",
    "FileUpload",
    "FileDownloadRequest",
    "SandboxMetrics",
}
_ERROR_NAMES = {
    "CoveError",
    "BadRequest",
    "AuthError",
    "NotFound",
    "Timeout",
    "ProcessTimeout",
    "Conflict",
    "Gone",
    "SandboxError",
}


def __getattr__(name: str) -> Any:
    if name in _ERROR_NAMES:
        from cove.wire import errors

        return getattr(errors, name)
    if name in _SDK_NAMES:
        import cove.sdk

        return getattr(cove.sdk, name)
    raise AttributeError(f"module 'cove' has no attribute {name!r}")
