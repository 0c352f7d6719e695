"""The Cove MCP server: every tool and resource on one `MCPServer`.

`build_mcp` is shared by both transports; `run_stdio` is `cove mcp`.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from cove.mcp.clients import ClientSource, OneClient
from cove.mcp.resources import register_resources
from cove.mcp.tools import register_tools
from cove.sdk import AsyncCove

INSTRUCTIONS = (
    "Cove runs code in isolated Linux sandboxes. Create one with create_sandbox, "
    "pass its id to the other tools, and delete it with delete_sandbox when done. "
    "exec runs a shell command to completion; start_command runs one in the "
    "background (read_logs, send_input, kill_command); run_code keeps Python state "
    "between calls and returns plots as images."
)


def build_mcp(clients: ClientSource, *, local_files: bool) -> MCPServer:
    mcp: MCPServer = MCPServer("cove", instructions=INSTRUCTIONS, log_level="WARNING")
    register_tools(mcp, clients, local_files=local_files)
    register_resources(mcp, clients)
    return mcp


async def run_stdio(api_url: str | None, api_key: str | None) -> None:
    """Serve MCP on stdin/stdout as the configured user (embedded with no URL).

    Sandboxes are kept when the client goes away: the agent that made them
    may come back (a new `cove mcp`) and find them with list_sandboxes.
    """
    async with AsyncCove(api_url=api_url, api_key=api_key, keep=True) as client:
        await build_mcp(OneClient(client), local_files=True).run_stdio_async()
