"""Cove over the Model Context Protocol: sandboxes as tools for any agent framework.

Built on the official `mcp` SDK (the `cove[mcp]` extra) and the Cove SDK's
public API; no protocol code of our own:

  clients.py    which `AsyncCove` serves a request (stdio: one; HTTP: the caller's key)
  tools.py      the tools: sandboxes, exec, code, files, sessions, previews
  longrun.py    exec as a session command: progress while it runs, killed on cancel
  resources.py  cove://{sandbox}/files/{path} and cove://{sandbox}/logs/{session}/{command}
  server.py     the `MCPServer` with all of them, and `cove mcp` over stdio
"""
