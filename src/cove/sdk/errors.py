"""The SDK's side of the one error tree (`cove.wire.errors`).

The server sends an error envelope; `error_from_response` rebuilds the class it
names (through `cove.wire.errors.from_envelope`, the same table the server used)
and adds what the caller should do about it. Two classes exist only on the
client side: a server that cannot be reached, and a command timeout that
carries the output produced before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cove.wire.errors import (
    AuthError,
    CoveError,
    NotFound,
    ProcessTimeout,
    SandboxError,
    Timeout,
    from_envelope,
)


class ServerUnreachable(CoveError):
    """No answer from the Cove server at all (refused, DNS, TLS...)."""

    status = 503
    code = "SERVER_UNREACHABLE"


class CommandTimeout(ProcessTimeout):
    """`exec`, `code_run` or a session command ran past `timeout`; it was killed.

    `response` holds what it printed until then (`timed_out=True`), so a
    timeout does not lose the output: an `ExecuteResponse` for `exec` and
    `code_run`, a `SessionExecuteResponse` for `execute_session_command`.
    Daytona's SDK raises a timeout error here too, so code written for it
    keeps working.
    """

    # Typed Any: which response class depends on the call (see above).
    def __init__(self, message: str, response: Any, body: Any = None) -> None:
        super().__init__(message, body=body)
        self.response = response


_HINTS: list[tuple[type[CoveError], str]] = [
    (AuthError, "check COVE_API_KEY or api_key=; `cove serve` prints the key"),
    (SandboxError, "start it with sandbox.start() or create a new one"),
]


def with_context(err: CoveError, what: str, hint: str | None = None) -> CoveError:
    """The same error class, its message prefixed by the failed operation."""
    message = f"{what} failed: {err.message}"
    if err.message.startswith(f"{what} failed:"):
        message = err.message  # the sandbox said it already (git's own failures do)
    if hint is None:
        hint = next((h for cls, h in _HINTS if isinstance(err, cls)), None)
    if hint and hint not in message:
        message += f" ({hint})"
    new = type(err)(message, code=err.code, body=err.body)
    new.status = err.status  # type: ignore[misc]
    return new


def error_from_response(
    status: int, text: str, what: str, read_partial: Callable[[Any], Any] | None = None
) -> CoveError:
    """The error a server's answer describes; a command timeout's body, read by
    `read_partial` (the call's own parser), becomes the `CommandTimeout`'s response."""
    body: Any = None
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    err = from_envelope(status, body, text.strip()[:500] or f"HTTP {status}")
    err.status = status  # type: ignore[misc]
    partial = isinstance(body, dict) and "exitCode" in body
    if isinstance(err, ProcessTimeout) and partial and read_partial is not None:
        return CommandTimeout(f"{what} failed: {err.message}", read_partial(body), body)
    hint = None
    if isinstance(err, NotFound) and "sandbox" in err.message:
        hint = "list your sandboxes with cove.list() or `cove list`"
    return with_context(err, what, hint)


def unreachable(url: str, exc: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"cannot reach the Cove server at {url}: {exc or type(exc).__name__}. "
        "Start one with `cove serve`, or unset COVE_API_URL to run embedded"
    )


def read_timeout(what: str, seconds: float | None) -> Timeout:
    limit = f" within {seconds:g}s" if seconds else ""
    return Timeout(f"{what}: the server did not answer{limit}; pass a larger timeout")


class CodeTimeout(Timeout):
    """`run_code` ran past `timeout`; the run was interrupted, the context kept.

    `result` holds the output produced before the timeout.
    """

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result
