"""Sandbox files and command logs as MCP resources.

  cove://{sandbox}/files/{path}                 a file (workspace-relative, or
                                                absolute after a double slash)
  cove://{sandbox}/logs/{session}/{command}     a session command's output so far

The path may hold `..` or be absolute: the agent resolves it inside the
sandbox, as the sandbox's user, so it cannot reach the host (the mcp SDK's
traversal checks, meant for servers that read their own disk, are waived).
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import ResourceSecurity

from cove.mcp.clients import ClientSource
from cove.mcp.failures import as_tool_errors

INSIDE_SANDBOX = ResourceSecurity(exempt_params={"path"})


def register_resources(mcp: MCPServer, clients: ClientSource) -> None:
    @mcp.resource(
        "cove://{sandbox_id}/files/{+path}",
        name="sandbox-file",
        description="A file in a sandbox",
        mime_type="application/octet-stream",
        security=INSIDE_SANDBOX,
    )
    async def sandbox_file(sandbox_id: str, path: str, ctx: Context) -> bytes:
        with as_tool_errors():
            sb = await clients.client_for(ctx).get(sandbox_id)
            data = await sb.fs.download_file(path)
            assert data is not None
            return data

    @mcp.resource(
        "cove://{sandbox_id}/logs/{session_id}/{command_id}",
        name="command-logs",
        description="The output so far of a command in a sandbox session",
        mime_type="text/plain",
    )
    async def command_logs(sandbox_id: str, session_id: str, command_id: str, ctx: Context) -> str:
        with as_tool_errors():
            sb = await clients.client_for(ctx).get(sandbox_id)
            logs = await sb.process.get_session_command_logs(session_id, command_id)
            return logs.output
