"""The `cove` command line: argument parsing, client commands, terminal and PTY handling.

It uses the SDK's public API only; `cove serve` imports the server, nothing else.
"""

from cove.cli.main import main

__all__ = ["main"]
