"""The MCP tools: thin wrappers over the Cove SDK's public API.

Each tool's docstring is its description for the model, and its typed
parameters (with `Field` descriptions) its JSON schema. Tools return plain
dicts (structured content, also sent as JSON text), or content blocks where a
result is an image.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ContentBlock, ImageContent, TextContent
from pydantic import Field

from cove.mcp.clients import ClientSource
from cove.mcp.failures import as_tool_errors
from cove.mcp.longrun import run_code_with_progress, run_with_progress, wait_for_end
from cove.sdk import AsyncSandbox, CodeRunParams, SessionExecuteRequest
from cove.wire.errors import BadRequest

SandboxId = Annotated[str, Field(description="The sandbox's id (from create_sandbox)")]
Path = Annotated[
    str, Field(description="A path inside the sandbox, absolute or workspace-relative")
]
Timeout = Annotated[
    float | None, Field(description="Seconds before the command is killed; none for no limit")
]
Env = Annotated[dict[str, str] | None, Field(description="Extra environment variables")]
SessionName = Annotated[str, Field(description="A session to run it in (made if new)")]
Offset = Annotated[int, Field(description="Byte offset to read from (next_offset)", ge=0)]
WaitSeconds = Annotated[
    float, Field(description="Seconds to wait for the command to end first (max 60)", ge=0, le=60)
]
Port = Annotated[
    int, Field(description="A port a server listens on in the sandbox", ge=1, le=65535)
]
READ_LIMIT = 1 << 20  # read_file returns at most this many bytes (an LLM's context is finite)


def _sandbox_json(sb: AsyncSandbox) -> dict[str, Any]:
    return {
        "id": sb.id, "name": sb.name, "state": sb.state, "language": sb.language,
        "cpu": sb.cpu, "memory": sb.memory, "disk": sb.disk, "labels": dict(sb.labels or {}),
    }  # fmt: skip


def register_tools(mcp: MCPServer, clients: ClientSource, *, local_files: bool) -> None:
    """Add every tool to `mcp`. `local_files`: the upload/download tools, which
    read and write the MCP server's own disk, so only where that is the
    user's machine (stdio), never on a shared control plane (HTTP)."""

    async def sandbox(ctx: Context, sandbox_id: str) -> AsyncSandbox:
        return await clients.client_for(ctx).get(sandbox_id)

    # -- sandboxes ---------------------------------------------------------------

    @mcp.tool()
    async def create_sandbox(
        ctx: Context,
        language: Annotated[str, Field(description="python, javascript or typescript")] = "python",
        cpu: Annotated[int | None, Field(description="CPU cores")] = None,
        memory: Annotated[int | None, Field(description="Memory in GiB")] = None,
        disk: Annotated[int | None, Field(description="Disk in GiB")] = None,
        env: Env = None,
        labels: Annotated[dict[str, str] | None, Field(description="Labels to find it by")] = None,
        name: Annotated[str | None, Field(description="A unique name")] = None,
    ) -> dict[str, Any]:
        """Create a new isolated sandbox (a small Linux machine) and return its id.
        Use the id with every other tool; delete the sandbox when done."""
        with as_tool_errors():
            sb = await clients.client_for(ctx).create(
                language=language, cpu=cpu, memory=memory, disk=disk, env_vars=env,
                labels=labels, name=name,
            )  # fmt: skip
            return _sandbox_json(sb)

    @mcp.tool()
    async def list_sandboxes(
        ctx: Context,
        labels: Annotated[dict[str, str] | None, Field(description="Only these labels")] = None,
    ) -> dict[str, Any]:
        """List your sandboxes (id, state, language, resources, labels)."""
        with as_tool_errors():
            found = await clients.client_for(ctx).list(labels)
            return {"sandboxes": [_sandbox_json(sb) for sb in found]}

    @mcp.tool()
    async def delete_sandbox(ctx: Context, sandbox_id: SandboxId) -> dict[str, Any]:
        """Delete a sandbox and everything in it."""
        with as_tool_errors():
            await clients.client_for(ctx).delete(sandbox_id)
            return {"deleted": sandbox_id}

    # -- running code ------------------------------------------------------------

    @mcp.tool()
    async def exec(
        ctx: Context,
        sandbox_id: SandboxId,
        command: Annotated[str, Field(description="A shell command line (run by sh -c)")],
        cwd: Annotated[str | None, Field(description="Working directory")] = None,
        env: Env = None,
        timeout: Timeout = None,
    ) -> dict[str, Any]:
        """Run a shell command to completion and return its exit code, stdout and
        stderr apart, and whether it timed out or its output was truncated.
        Reports progress while it runs; cancelling the call kills the command."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            out = await run_with_progress(sb, ctx, command, cwd, env, timeout)
            return {
                "exit_code": out.exit_code, "stdout": out.stdout, "stderr": out.stderr,
                "timed_out": out.timed_out, "truncated": out.truncated,
            }  # fmt: skip

    @mcp.tool()
    async def run_code(
        ctx: Context,
        sandbox_id: SandboxId,
        code: Annotated[str, Field(description="Python code; variables persist between calls")],
        context_id: Annotated[
            str | None, Field(description="An interpreter context (create_code_context)")
        ] = None,
        timeout: Timeout = None,
    ) -> list[ContentBlock]:
        """Run Python in the sandbox's stateful interpreter (like a notebook cell).
        Returns stdout, stderr, the error if one was raised, the last expression's
        value, and matplotlib figures and PNG results as images."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            run = await run_code_with_progress(sb, ctx, code, context_id, timeout)
        blocks: list[ContentBlock] = []
        text = [
            f"stdout:\n{run.stdout}" if run.stdout else "",
            f"stderr:\n{run.stderr}" if run.stderr else "",
        ]
        if run.error is not None:
            text.append(f"error: {run.error.name}: {run.error.value}\n{run.error.traceback}")
        if run.interrupted:
            text.append("interrupted (timeout or interrupt); the context's state is kept")
        for r in run.results:
            if r.png:
                blocks.append(ImageContent(type="image", data=r.png, mime_type="image/png"))
            elif r.html:
                text.append(f"html:\n{r.html}")
            elif r.text is not None:
                text.append(f"result: {r.text}" if r.is_main_result else r.text)
        joined = "\n".join(t for t in text if t) or "(no output)"
        return [TextContent(type="text", text=joined), *blocks]

    @mcp.tool()
    async def create_code_context(
        ctx: Context,
        sandbox_id: SandboxId,
        cwd: Annotated[str | None, Field(description="Working directory")] = None,
    ) -> dict[str, Any]:
        """Create a separate interpreter context (its own variables) for run_code."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            c = await sb.code_interpreter.create_context(cwd=cwd)
            return {"context_id": c.id, "cwd": c.cwd, "language": c.language}

    @mcp.tool()
    async def code_run(
        ctx: Context,
        sandbox_id: SandboxId,
        code: Annotated[str, Field(description="The program's source")],
        language: Annotated[
            str | None, Field(description="python, javascript or typescript (the sandbox's)")
        ] = None,
        argv: Annotated[list[str] | None, Field(description="Program arguments")] = None,
        env: Env = None,
        timeout: Timeout = None,
    ) -> dict[str, Any]:
        """Run a program in a fresh interpreter (nothing kept between calls)."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            params = CodeRunParams(argv=argv, env=env)
            r = await sb.process.code_run(code, params, timeout, language)
            return {
                "exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr,
                "timed_out": r.timed_out, "truncated": r.truncated,
            }  # fmt: skip

    # -- files ---------------------------------------------------------------------

    @mcp.tool()
    async def write_file(
        ctx: Context, sandbox_id: SandboxId, path: Path,
        content: Annotated[str, Field(description="The file's whole new text")],
    ) -> dict[str, Any]:  # fmt: skip
        """Write a text file in the sandbox (created or replaced, parents made)."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            data = content.encode()
            await sb.fs.upload_file(data, path)
            return {"path": path, "bytes": len(data)}

    @mcp.tool()
    async def read_file(ctx: Context, sandbox_id: SandboxId, path: Path) -> dict[str, Any]:
        """Read a text file from the sandbox (at most 1 MiB; use download_file for more)."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            info = await sb.fs.get_file_info(path)
            if info.is_dir:
                raise BadRequest(f"{path} is a directory: use list_files")
            if info.size > READ_LIMIT:
                raise BadRequest(f"{path} has {info.size} bytes, more than read_file returns")
            data = await sb.fs.download_file(path)
            assert data is not None
            return {"path": path, "content": data.decode(errors="replace")}

    @mcp.tool()
    async def list_files(
        ctx: Context, sandbox_id: SandboxId, path: Path = ".",
        depth: Annotated[int | None, Field(description="Levels to descend (1: this one)")] = None,
    ) -> dict[str, Any]:  # fmt: skip
        """List a directory in the sandbox: name, size, whether it is a directory."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            found = await sb.fs.list_files(path, depth)
            return {
                "files": [
                    {"name": f.name, "path": f.path, "size": f.size, "is_dir": f.is_dir}
                    for f in found
                ]
            }

    @mcp.tool()
    async def search_files(
        ctx: Context, sandbox_id: SandboxId,
        pattern: Annotated[str, Field(description="Text to find in file contents")],
        path: Path = ".",
    ) -> dict[str, Any]:  # fmt: skip
        """Search file contents under a directory (like grep -rn): file, line, text."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            found = await sb.fs.find_files(path, pattern)
            return {
                "matches": [{"file": m.file, "line": m.line, "content": m.content} for m in found]
            }

    @mcp.tool()
    async def find_files(
        ctx: Context, sandbox_id: SandboxId,
        pattern: Annotated[str, Field(description="A glob on file names, e.g. *.py")],
        path: Path = ".",
    ) -> dict[str, Any]:  # fmt: skip
        """Find files by name under a directory."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            found = await sb.fs.search_files(path, pattern)
            return {"files": list(found.files)}

    @mcp.tool()
    async def replace_in_files(
        ctx: Context, sandbox_id: SandboxId,
        files: Annotated[list[str], Field(description="The files to edit")],
        pattern: Annotated[str, Field(description="The text to replace")],
        new_value: Annotated[str, Field(description="What replaces it")],
    ) -> dict[str, Any]:  # fmt: skip
        """Replace text in the given files; says per file whether it worked."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            done = await sb.fs.replace_in_files(files, pattern, new_value)
            return {
                "results": [{"file": r.file, "success": r.success, "error": r.error} for r in done]
            }

    if local_files:
        _register_transfers(mcp, sandbox)

    # -- sessions ------------------------------------------------------------------

    @mcp.tool()
    async def start_command(
        ctx: Context, sandbox_id: SandboxId,
        command: Annotated[str, Field(description="A shell command line to run in the background")],
        session_id: SessionName = "mcp",
        cwd: Annotated[str | None, Field(description="Working directory")] = None,
        env: Env = None,
        timeout: Timeout = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Start a long-running command (a server, a watcher) in the background and
        return its command id; read its logs, send it input or kill it later."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            if session_id not in {s.session_id for s in await sb.process.list_sessions()}:
                await sb.process.create_session(session_id)
            # The input sent is not echoed into the logs: the model knows what it sent.
            req = SessionExecuteRequest(
                command, run_async=True, suppress_input_echo=True, cwd=cwd, env=env,
                timeout=timeout,
            )  # fmt: skip
            started = await sb.process.execute_session_command(session_id, req)
            return {"session_id": session_id, "command_id": started.cmd_id}

    @mcp.tool()
    async def read_logs(
        ctx: Context, sandbox_id: SandboxId, session_id: str, command_id: str,
        offset: Offset = 0,
        wait_seconds: WaitSeconds = 0,
    ) -> dict[str, Any]:  # fmt: skip
        """Read a background command's output from a byte offset; pass the returned
        next_offset to read only what came after. exit_code is null while it runs.
        wait_seconds > 0 follows the command until it ends or that time passes."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            if wait_seconds > 0:
                await wait_for_end(sb, session_id, command_id, wait_seconds)
            cmd = await sb.process.get_session_command(session_id, command_id)
            logs = await sb.process.get_session_command_logs(session_id, command_id)
            data = logs.output.encode()
            return {
                "output": data[offset:].decode(errors="replace"), "next_offset": len(data),
                "exit_code": cmd.exit_code, "timed_out": cmd.timed_out,
            }  # fmt: skip

    @mcp.tool()
    async def send_input(
        ctx: Context, sandbox_id: SandboxId, session_id: str, command_id: str,
        data: Annotated[str, Field(description="Text for its stdin (a newline is added)")],
    ) -> dict[str, Any]:  # fmt: skip
        """Send a line of input to a background command's stdin."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            await sb.process.send_session_command_input(session_id, command_id, data)
            return {"sent": len(data)}

    @mcp.tool()
    async def kill_command(
        ctx: Context, sandbox_id: SandboxId, session_id: str, command_id: str,
    ) -> dict[str, Any]:  # fmt: skip
        """Kill a background command and everything it started."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            cmd = await sb.process.kill_session_command(session_id, command_id)
            return {"command_id": cmd.id, "exit_code": cmd.exit_code}

    # -- previews ------------------------------------------------------------------

    @mcp.tool()
    async def preview_url(
        ctx: Context, sandbox_id: SandboxId,
        port: Port,
    ) -> dict[str, Any]:  # fmt: skip
        """The URL where a server inside the sandbox can be reached over HTTP,
        and the token to send as the x-daytona-preview-token header."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            link = await sb.get_preview_link(port)
            return {"url": link.url, "token": link.token}


def _register_transfers(mcp: MCPServer, sandbox: Any) -> None:
    @mcp.tool()
    async def upload_file(
        ctx: Context, sandbox_id: SandboxId,
        local_path: Annotated[str, Field(description="A file on this (the MCP client's) machine")],
        path: Path,
    ) -> dict[str, Any]:  # fmt: skip
        """Copy a file from this machine into the sandbox (streamed; any size)."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            try:
                await sb.fs.upload_file(local_path, path)
            except FileNotFoundError as err:
                raise BadRequest(f"no local file {local_path}") from err
            return {"path": path}

    @mcp.tool()
    async def download_file(
        ctx: Context, sandbox_id: SandboxId, path: Path,
        local_path: Annotated[str, Field(description="Where to write it on this machine")],
    ) -> dict[str, Any]:  # fmt: skip
        """Copy a file from the sandbox to this machine (streamed; any size)."""
        with as_tool_errors():
            sb = await sandbox(ctx, sandbox_id)
            await sb.fs.download_file(path, local_path)
            return {"local_path": local_path}
