"""Long tool calls: progress while they run, and nothing left running when cancelled.

The command runs as a background command in a session kept for MCP's execs,
so the tool can follow its output (progress notifications as it arrives, and a
heartbeat while it is silent) and, when the client cancels the call, kill the
command's whole tree: the MCP SDK cancels the tool's task, and the kill runs
shielded from that cancellation. `run_code` does the same with the
interpreter's output, and a cancelled run is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from dataclasses import dataclass
from typing import Any

import anyio

from cove.sdk import (
    AsyncProcess,
    AsyncSandbox,
    ExecutionResult,
    OutputMessage,
    SessionExecuteRequest,
    SessionExecuteResponse,
)
from cove.wire.errors import Conflict, CoveError, NotFound

log = logging.getLogger(__name__)
HEARTBEAT_S = 1.0  # how often a silent command still reports progress


@dataclass
class ExecOutcome:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool


class _Progress:
    """Counts output bytes and reports them; the heartbeat reports them too."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.received = 0
        self.started = asyncio.get_running_loop().time()

    async def report(self) -> None:
        elapsed = asyncio.get_running_loop().time() - self.started
        await self.ctx.report_progress(
            elapsed, message=f"running {elapsed:.0f}s, {self.received} bytes of output"
        )

    async def on_output(self, chunk: str) -> None:
        self.received += len(chunk.encode())
        await self.report()

    async def on_message(self, message: OutputMessage) -> None:
        await self.on_output(message.output)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self.report()


EXEC_SESSION = "mcp-exec"  # one per sandbox, shared by every exec through MCP


def stateless(command: str) -> str:
    """`command` in a bash that replaces the session's: a `cd` or `export` in it
    does not carry over to the next exec (the session keeps its state when its
    shell is replaced), as a plain exec would not."""
    return f"exec bash -c {shlex.quote(command)}"


async def _start(process: AsyncProcess, req: SessionExecuteRequest) -> SessionExecuteResponse:
    try:
        return await process.execute_session_command(EXEC_SESSION, req)
    except NotFound:  # the first exec in this sandbox (or its session was deleted)
        with contextlib.suppress(Conflict):  # a concurrent exec made it first
            await process.create_session(EXEC_SESSION)
        return await process.execute_session_command(EXEC_SESSION, req)


async def run_with_progress(
    sandbox: AsyncSandbox, ctx: Any, command: str, cwd: str | None,
    env: dict[str, str] | None, timeout: float | None,
) -> ExecOutcome:  # fmt: skip
    process = sandbox.process
    req = SessionExecuteRequest(
        stateless(command), run_async=True, cwd=cwd, env=env, timeout=timeout
    )
    started = await _start(process, req)
    progress = _Progress(ctx)
    stdout: list[str] = []
    stderr: list[str] = []

    async def out(chunk: str) -> None:
        stdout.append(chunk)
        await progress.on_output(chunk)

    async def err(chunk: str) -> None:
        stderr.append(chunk)
        await progress.on_output(chunk)

    beat = asyncio.create_task(progress.heartbeat())
    try:
        await process.follow_session_command_logs(EXEC_SESSION, started.cmd_id, out, err)
        cmd = await process.get_session_command(EXEC_SESSION, started.cmd_id)
    except asyncio.CancelledError:
        # The client gave up: kill the command's whole tree, shielded so that
        # the cancellation that got us here cannot skip it.
        with anyio.CancelScope(shield=True):
            await process.kill_session_command(EXEC_SESSION, started.cmd_id)
        raise
    finally:
        beat.cancel()
    return ExecOutcome(
        cmd.exit_code, "".join(stdout), "".join(stderr), cmd.timed_out, cmd.truncated
    )


async def run_code_with_progress(
    sandbox: AsyncSandbox, ctx: Any, code: str, context_id: str | None, timeout: float | None
) -> ExecutionResult:
    """`run_code` reporting its output as progress; a cancelled call interrupts
    the run (KeyboardInterrupt in the interpreter, whose state is kept)."""
    interpreter = sandbox.code_interpreter
    progress = _Progress(ctx)
    beat = asyncio.create_task(progress.heartbeat())
    try:
        return await interpreter.run_code(
            code, context=context_id, timeout=timeout, on_stdout=progress.on_message,
            on_stderr=progress.on_message,
        )  # fmt: skip
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            try:
                await interpreter.interrupt(context_id)
            except CoveError:  # e.g. the run had just ended: nothing to interrupt
                log.warning("interrupting a cancelled run_code failed", exc_info=True)
        raise
    finally:
        beat.cancel()


async def wait_for_end(sandbox: AsyncSandbox, session: str, command: str, seconds: float) -> None:
    """Follow a session command until it ends, or `seconds` pass (its output is
    read afterwards, from the caller's offset; the follow only waits)."""

    def ignore(_: str) -> None:
        pass

    follow = sandbox.process.follow_session_command_logs(session, command, ignore, ignore)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(follow, seconds)
