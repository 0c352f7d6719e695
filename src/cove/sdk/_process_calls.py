"""Every request of `sandbox.process`, built once for both faces (wire page §4).

Daytona's endpoints plus Cove's additive ones: per-command cwd/env/timeout,
kill (`/kill`), stdin close (`/stdin/close`) and log resume (`offset=`), as
documented in `cove.agent.sessions.routes`. Bodies are the wire's request
models; answers are read by the classes in `cove.sdk.models`, which are (or
are built from) the wire's response models. The PTY calls are in `_pty.py`.
"""

from __future__ import annotations

from typing import Any

from cove.sdk._base import Call, Toolbox, exec_timeout, seg, wire_body
from cove.sdk.models import (
    CodeRunParams,
    Command,
    ExecuteResponse,
    Session,
    SessionCommandLogsResponse,
    SessionExecuteRequest,
    SessionExecuteResponse,
)
from cove.wire.errors import BadRequest
from cove.wire.protocol import (
    CodeRunRequest,
    CommandSignalRequest,
    CreateSessionRequest,
    ExecuteRequest,
    SessionInputRequest,
)


def _sessions(data: Any) -> list[Session]:
    if not isinstance(data, list):
        raise BadRequest("the session list must be a JSON array")
    return [Session.from_wire(s, f"sessions[{i}]") for i, s in enumerate(data)]


class ProcessCalls:
    def __init__(self, toolbox: Toolbox) -> None:
        self.tb = toolbox

    def exec(
        self, command: str, cwd: str | None, env: dict[str, str] | None, timeout: float | None
    ) -> Call[ExecuteResponse]:
        body = ExecuteRequest(command, cwd, dict(env or {}), timeout or None)
        return self.tb.call(
            "POST", "/process/execute", "exec", ExecuteResponse.from_wire, wire_body(body),
            exec_timeout(timeout),
        )  # fmt: skip

    def code_run(
        self, code: str, params: CodeRunParams | None, timeout: float | None,
        language: str | None = None,
    ) -> Call[ExecuteResponse]:  # fmt: skip
        body = CodeRunRequest(
            code, language or self.tb.language, list(params.argv or []) if params else [],
            dict(params.env or {}) if params else {}, timeout or None,
        )  # fmt: skip
        return self.tb.call(
            "POST", "/process/code-run", "code_run", ExecuteResponse.from_wire, wire_body(body),
            exec_timeout(timeout),
        )  # fmt: skip

    def create_session(self, session_id: str) -> Call[None]:
        body = wire_body(CreateSessionRequest(session_id))
        return self.tb.void("POST", "/process/session", "create session", body)

    def get_session(self, session_id: str) -> Call[Session]:
        path = f"/process/session/{seg(session_id)}"
        return self.tb.call("GET", path, "get session", Session.from_wire)

    def list_sessions(self) -> Call[list[Session]]:
        return self.tb.call("GET", "/process/session", "list sessions", _sessions)

    def delete_session(self, session_id: str) -> Call[None]:
        return self.tb.void("DELETE", f"/process/session/{seg(session_id)}", "delete session")

    def execute_session_command(
        self, session_id: str, req: SessionExecuteRequest, timeout: float | None
    ) -> Call[SessionExecuteResponse]:
        wait = timeout if timeout is not None else req.timeout
        return self.tb.call(
            "POST", f"/process/session/{seg(session_id)}/exec", "execute session command",
            SessionExecuteResponse.from_wire, req.to_wire(),
            None if req.is_async else exec_timeout(wait),
        )  # fmt: skip

    def _command(self, session_id: str, command_id: str) -> str:
        return f"/process/session/{seg(session_id)}/command/{seg(command_id)}"

    def get_session_command(self, session_id: str, command_id: str) -> Call[Command]:
        path = self._command(session_id, command_id)
        return self.tb.call("GET", path, "get session command", Command.from_wire)

    def get_session_command_logs(
        self, session_id: str, command_id: str
    ) -> Call[SessionCommandLogsResponse]:
        path = self._command(session_id, command_id) + "/logs"
        return self.tb.call("GET", path, "get command logs", SessionCommandLogsResponse.from_wire)

    def send_session_command_input(
        self, session_id: str, command_id: str, data: str, raw: bool
    ) -> Call[None]:
        path = self._command(session_id, command_id) + "/input"
        body = wire_body(SessionInputRequest(data, raw=raw))
        return self.tb.void("POST", path, "send command input", body)

    def close_session_command_input(self, session_id: str, command_id: str) -> Call[Command]:
        path = self._command(session_id, command_id) + "/stdin/close"
        return self.tb.call("POST", path, "close command input", Command.from_wire, {})

    def kill_session_command(
        self, session_id: str, command_id: str, signal: str | int | None
    ) -> Call[Command]:
        path = self._command(session_id, command_id) + "/kill"
        body = wire_body(CommandSignalRequest(None if signal is None else str(signal)))
        return self.tb.call("POST", path, "kill session command", Command.from_wire, body)

    def get_entrypoint_session(self) -> Call[Session]:
        return self.tb.call(
            "GET", "/process/session/entrypoint", "get entrypoint session", Session.from_wire
        )

    def get_entrypoint_logs(self) -> Call[SessionCommandLogsResponse]:
        return self.tb.call(
            "GET", "/process/session/entrypoint/logs", "get entrypoint logs",
            SessionCommandLogsResponse.from_wire,
        )  # fmt: skip

    def logs_url(self, session_id: str | None, command_id: str | None, offset: int) -> str:
        if session_id is None:
            path = "/process/session/entrypoint/logs?follow=true"
        else:
            path = self._command(session_id, str(command_id)) + "/logs?follow=true"
        return self.tb.url(path + (f"&offset={int(offset)}" if offset else ""))
