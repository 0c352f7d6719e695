"""`cove mcp`: Cove's sandboxes as MCP tools, over stdin/stdout.

What desktop and CLI agents launch (an `mcpServers` entry). Stdout carries
the protocol, so nothing else may print there: logs go to stderr.
"""

from __future__ import annotations

import argparse
import sys

import anyio


def mcp_command(args: argparse.Namespace) -> int:
    try:
        from cove.mcp.server import run_stdio
    except ImportError as err:  # the `mcp` package is the `cove[mcp]` extra
        print(f"cove: {err}; install it with: pip install 'cove[mcp]'", file=sys.stderr)
        return 1
    anyio.run(run_stdio, args.api_url, args.api_key)
    return 0
