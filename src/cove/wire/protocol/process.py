"""Toolbox wire models: stateless execution (`/process/execute`, `/process/code-run`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cove.wire.model import WireModel

LANGUAGES = ("python", "javascript", "typescript", "bash")


@dataclass
class ExecuteRequest(WireModel):
    command: str
    cwd: str | None = None
    envs: dict[str, str] = field(default_factory=dict)
    # Seconds; None or 0 means no limit.
    timeout: float | None = None
    # Per-stream cap; None takes the agent's configured default.
    max_output_bytes: int | None = None


@dataclass
class ExecuteResponse(WireModel):
    exit_code: int
    # Daytona's field: stdout and stderr combined in the order they arrived.
    result: str
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False


@dataclass
class CodeRunRequest(WireModel):
    code: str
    language: str | None = None
    argv: list[str] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    max_output_bytes: int | None = None


@dataclass
class CodeRunResponse(ExecuteResponse):
    # {"charts": [...]} in the shape the official SDK parses.
    artifacts: dict[str, Any] = field(default_factory=lambda: {"charts": []})
