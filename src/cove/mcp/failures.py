"""SDK errors as MCP tool errors whose text tells the model what to do next.

A tool error (`isError` on the result) reaches the model as text it can act
on; a protocol error would only tell its client that something broke.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from cove.sdk.errors import ServerUnreachable
from cove.wire.errors import (
    AuthError,
    BadRequest,
    Conflict,
    CoveError,
    NotFound,
    PayloadTooLarge,
    PortUnreachable,
    SandboxError,
    Timeout,
)

# Checked in order: the first class the error is an instance of gives the hint.
_HINTS: list[tuple[type[CoveError], str]] = [
    (NotFound, "check the sandbox id with list_sandboxes, or the path with list_files"),
    (BadRequest, "fix the argument named above and call the tool again"),
    (AuthError, "the API key is missing or wrong: set COVE_API_KEY (`cove serve` prints it)"),
    (Timeout, "raise `timeout`, or run it in the background with start_command"),
    (Conflict, "the sandbox is not in a state for this: start it, or create a new one"),
    (PayloadTooLarge, "send less data at once, or write it in parts"),
    (PortUnreachable, "start a server listening on that port in the sandbox first"),
    (ServerUnreachable, "the Cove server is not reachable: start it with `cove serve`"),
    (SandboxError, "the sandbox failed: delete it and create a new one"),
]


def hint_for(err: CoveError) -> str:
    for cls, hint in _HINTS:
        if isinstance(err, cls):
            return hint
    return "try again; if it keeps failing, create a new sandbox"


@contextmanager
def as_tool_errors() -> Iterator[None]:
    """Turn a Cove error raised by the SDK into a `ToolError` with a next step."""
    try:
        yield
    except CoveError as err:
        raise ToolError(f"{err.message} ({hint_for(err)})") from err
