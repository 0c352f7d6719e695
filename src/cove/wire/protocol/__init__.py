"""Wire models shared by the agent, the server and the SDK.

Names on the wire are Daytona's (camelCase). Fields Daytona does not have are
additive: the official SDK ignores them, Cove's SDK uses them. One module per
area; everything is re-exported here, each area imported on the first use of
one of its names (the agent imports only the areas it serves: each costs
milliseconds and memory of every sandbox's start). Standard library only (the
agent imports these inside sandboxes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.wire.protocol.control import (
        METRIC_FIELDS,
        MetricDataPoint,
        MetricSeries,
        MetricsResponse,
        ResizeSandbox,
        SandboxLabels,
        SystemMetrics,
    )
    from cove.wire.protocol.files import (
        FileInfo,
        FilesDownloadRequest,
        Match,
        ReplaceRequest,
        ReplaceResult,
        SearchFilesResponse,
        UploadedFile,
        UploadFilesResponse,
    )
    from cove.wire.protocol.interpreter import (
        DEFAULT_CONTEXT_ID,
        ContextList,
        CreateContextRequest,
        InterpreterContext,
        InterruptResponse,
        RunCodeRequest,
    )
    from cove.wire.protocol.network import NetworkPolicy, NetworkSettings
    from cove.wire.protocol.preview import PortPreviewUrl, SignedPortPreviewUrl
    from cove.wire.protocol.process import (
        LANGUAGES,
        CodeRunRequest,
        CodeRunResponse,
        ExecuteRequest,
        ExecuteResponse,
    )
    from cove.wire.protocol.sandbox import (
        LANGUAGE_LABEL,
        CreateSandboxRequest,
        Node,
        NodeList,
        Sandbox,
        SandboxList,
        StorageAccess,
        UpdateNetworkSettings,
    )
    from cove.wire.protocol.sessions import (
        Command,
        CommandSignalRequest,
        CreateSessionRequest,
        PtyCreateRequest,
        PtyResizeRequest,
        PtySessionInfo,
        PtySessionList,
        Session,
        SessionCommandLogs,
        SessionExecuteRequest,
        SessionExecuteResponse,
        SessionInputRequest,
    )

__all__ = [
    "DEFAULT_CONTEXT_ID",
    "LANGUAGES",
    "LANGUAGE_LABEL",
    "METRIC_FIELDS",
    "CodeRunRequest",
    "CodeRunResponse",
    "Command",
    "CommandSignalRequest",
    "ContextList",
    "CreateContextRequest",
    "CreateSandboxRequest",
    "CreateSessionRequest",
    "ExecuteRequest",
    "ExecuteResponse",
    "FileInfo",
    "FilesDownloadRequest",
    "InterpreterContext",
    "InterruptResponse",
    "Match",
    "MetricDataPoint",
    "MetricSeries",
    "MetricsResponse",
    "NetworkPolicy",
    "NetworkSettings",
    "Node",
    "NodeList",
    "PortPreviewUrl",
    "PtyCreateRequest",
    "PtyResizeRequest",
    "PtySessionInfo",
    "PtySessionList",
    "ReplaceRequest",
    "ReplaceResult",
    "ResizeSandbox",
    "RunCodeRequest",
    "Sandbox",
    "SandboxLabels",
    "SandboxList",
    "SearchFilesResponse",
    "Session",
    "SessionCommandLogs",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
    "SessionInputRequest",
    "SignedPortPreviewUrl",
    "StorageAccess",
    "SystemMetrics",
    "UpdateNetworkSettings",
    "UploadFilesResponse",
    "UploadedFile",
]

_AREAS = ("control", "files", "interpreter", "network", "preview", "process", "sandbox", "sessions")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for area in _AREAS:
            module = importlib.import_module(f"{__name__}.{area}")
            if name in vars(module):
                value = vars(module)[name]
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
