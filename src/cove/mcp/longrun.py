"""Long tool calls: progress while they run, and nothing left running when cancelled.

The command runs as a background command in a session of its own, so the
tool can follow its output (progress notifications as it arrives, and a
heartbeat while it is silent) and, when the client cancels the call, kill the
command's whole tree: the MCP SDK cancels the tool's task, and the kill runs
shielded from that cancellation. `run_code` does the same with the
interpreter's output, and a cancelled run is interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import anyio

from cove.sdk import AsyncSandbox, ExecutionResult, OutputMessage, SessionExecuteRequest
from cove.wire.errors import CoveError

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


async def run_with_progress(
    sandbox: AsyncSandbox, ctx: Any, command: str, cwd: str | None,
    env: dict[str, str] | None, timeout: float | None,
) -> ExecOutcome:  # fmt: skip
    process = sandbox.process
    session = f"mcp-exec-{uuid.uuid4().hex[:12]}"
    await process.create_session(session)
    try:
        req = SessionExecuteRequest(command, run_async=True, cwd=cwd, env=env, timeout=timeout)
        started = await process.execute_session_command(session, req)
        progress = _Progress(ctx)
        beat = asyncio.create_task(progress.heartbeat())
        try:
            await process.follow_session_command_logs(
                session, started.cmd_id, progress.on_output, progress.on_output
            )
        finally:
            beat.cancel()
        cmd = await process.get_session_command(session, started.cmd_id)
        logs = await process.get_session_command_logs(session, started.cmd_id)
        return ExecOutcome(cmd.exit_code, logs.stdout, logs.stderr, cmd.timed_out, cmd.truncated)
    finally:
        # Deleting the session kills what still runs in it (a cancelled call's
        # command); shielded, so the cancellation that got us here cannot skip it.
        with anyio.CancelScope(shield=True):
            await process.delete_session(session)


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
