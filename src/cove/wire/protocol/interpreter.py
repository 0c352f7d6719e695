"""Toolbox wire models: the stateful code interpreter (wire page §5).

Contexts are Daytona's `InterpreterContext` (every field required by the
official SDK). A run is one JSON text frame in over the WebSocket; what comes
back is a stream of JSON frames, documented in `cove.agent.interpreter.routes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.wire.model import WireModel

DEFAULT_CONTEXT_ID = "default"
INTERPRETER_LANGUAGES = ("python",)


@dataclass
class CreateContextRequest(WireModel):
    cwd: str | None = None
    language: str | None = None


@dataclass
class InterpreterContext(WireModel):
    id: str
    active: bool
    created_at: str
    cwd: str
    language: str = "python"


@dataclass
class ContextList(WireModel):
    contexts: list[InterpreterContext] = field(default_factory=list)


@dataclass
class RunCodeRequest(WireModel):
    code: str
    context_id: str | None = None
    envs: dict[str, str] = field(default_factory=dict)
    # Seconds; absent = the agent's default (10 minutes); 0 = no limit.
    timeout: float | None = None
    # Cove: what input() and sys.stdin read during this run; absent = EOF at once.
    stdin: str | None = None


@dataclass
class InterruptResponse(WireModel):
    """Cove's additive interrupt endpoint: whether a run was executing."""

    interrupted: bool
    context_id: str
