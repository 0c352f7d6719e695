"""`/process/execute`: run a shell command to completion, return the output.

`/process/code-run` is `code_run.py`, loaded on its first request: its zygote,
chart capture and temporary directories are not part of every sandbox's start.
"""

from __future__ import annotations

from cove.agent.core import Agent, Captured
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.wire.errors import BadRequest, ProcessTimeout
from cove.wire.protocol.process import ExecuteRequest, ExecuteResponse


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")


def result_fields(c: Captured) -> dict[str, object]:
    return {
        "exit_code": c.exit_code,
        "result": _text(c.output.combined),
        "stdout": _text(c.output.stdout),
        "stderr": _text(c.output.stderr),
        "timed_out": c.timed_out,
        "truncated": c.output.truncated,
    }


def respond(body: ExecuteResponse, timed_out: bool, timeout: float | None) -> Response:
    if timed_out:
        # Daytona's SDK expects a 408 here; Cove's reads the partial output from the body.
        raise ProcessTimeout(f"command timed out after {timeout:g}s", body=body.to_wire())
    return json_response(body.to_wire())


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise BadRequest("field 'timeout' must be >= 0 (seconds; 0 means no limit)")


class ExecuteRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def aclose(self) -> None:
        return None

    def register(self, router: Router) -> None:
        router.add("POST", "/process/execute", self.execute)

    async def execute(self, req: Request) -> Response:
        body = ExecuteRequest.from_wire(req.json())
        check_timeout(body.timeout)
        if not body.command.strip():
            raise BadRequest("field 'command' must not be empty")
        if "\0" in body.command:
            raise BadRequest("field 'command' contains a NUL byte")
        captured = await self.agent.run_captured(
            [self.agent.shell, "-c", body.command],
            cwd=self.agent.resolve_cwd(body.cwd),
            env=self.agent.child_env(body.envs),
            timeout=body.timeout,
            cap=body.max_output_bytes,
            via_shell=True,
        )
        return respond(ExecuteResponse(**result_fields(captured)), captured.timed_out, body.timeout)  # type: ignore[arg-type]
