"""One error tree for agent, server and SDK.

Each class carries the HTTP status and the machine-readable code it maps to, so
the mapping lives here once: the server turns an exception into an envelope
with `to_envelope`, the SDK turns an envelope back into an exception with
`from_envelope`. Standard library only: the agent imports this inside sandboxes.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar


class CoveError(Exception):
    """Root of every error Cove raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        # The decoded response body, when the error came over the wire (it may
        # carry partial output, e.g. of a timed-out command).
        self.body = body


class BadRequest(CoveError):
    """The caller sent something invalid; the message names the field."""

    status = 400
    code = "BAD_REQUEST"


class AuthError(CoveError):
    """Missing or wrong API key."""

    status = 401
    code = "UNAUTHORIZED"


class NotFound(CoveError):
    status = 404
    code = "NOT_FOUND"


class Timeout(CoveError):
    status = 408
    code = "TIMEOUT"


class ProcessTimeout(Timeout):
    """A command ran past its timeout; the body keeps the output produced so far."""

    code = "PROCESS_EXECUTION_TIMEOUT"


class Conflict(CoveError):
    status = 409
    code = "CONFLICT"


class Gone(CoveError):
    """The thing existed but has ended (e.g. input to an exited command)."""

    status = 410
    code = "GONE"


class PayloadTooLarge(CoveError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class AccessDenied(CoveError):
    """The sandbox's user may not touch that path (Daytona's daemon code)."""

    status = 403
    code = "FILE_ACCESS_DENIED"


class QuotaExceeded(CoveError):
    """The API key's quota does not allow it; the message names the limit and the use."""

    status = 429
    code = "QUOTA_EXCEEDED"


class InsufficientStorage(CoveError):
    """The sandbox's disk cannot hold what was sent."""

    status = 507
    code = "INSUFFICIENT_STORAGE"


class SandboxError(CoveError):
    """The sandbox cannot serve the call (stopped, failed, agent gone)."""

    status = 409
    code = "SANDBOX_NOT_RUNNING"


class AgentUnavailable(CoveError):
    """The agent inside a started sandbox did not answer."""

    status = 503
    code = "AGENT_UNAVAILABLE"


class PortUnreachable(CoveError):
    """Nothing answers on a sandbox port a preview asked for (the app is not listening)."""

    status = 502
    code = "PORT_NOT_LISTENING"


class NoCapacity(CoveError):
    """No node has room for the sandbox's CPU and memory (after waiting for some)."""

    status = 503
    code = "NO_CAPACITY"


class Unsupported(CoveError):
    """This server does not offer the feature (as configured); the message says what does."""

    status = 501
    code = "NOT_IMPLEMENTED"


class InternalError(CoveError):
    """A bug on our side; the message says what failed."""

    status = 500
    code = "INTERNAL_ERROR"


_BY_STATUS: dict[int, type[CoveError]] = {
    400: BadRequest,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    408: Timeout,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    429: QuotaExceeded,
    507: InsufficientStorage,
    503: AgentUnavailable,
    501: Unsupported,
}
_BY_CODE: dict[str, type[CoveError]] = {
    ProcessTimeout.code: ProcessTimeout,
    SandboxError.code: SandboxError,
    AccessDenied.code: AccessDenied,
    PortUnreachable.code: PortUnreachable,  # by code: any proxy's 502 stays an InternalError
    NoCapacity.code: NoCapacity,
}

# Daytona's SDK picks exception subclasses by (source, code); the agent's
# errors claim the daemon source so that e.g. a timeout maps to its
# DaytonaProcessExecutionTimeoutError.
SOURCE_AGENT = "DAYTONA_DAEMON"
SOURCE_API = "DAYTONA_API"


def to_envelope(err: CoveError, path: str, source: str) -> dict[str, Any]:
    """The error body both planes send: Daytona's envelope plus any extra fields."""
    envelope: dict[str, Any] = {}
    if isinstance(err.body, dict):
        envelope.update(err.body)
    envelope.update(
        {
            "message": err.message,
            "code": err.code,
            "source": source,
            "statusCode": err.status,
            "path": path,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    return envelope


def from_envelope(status: int, body: Any, fallback_text: str = "") -> CoveError:
    """Rebuild the exception a server sent (used by the SDK)."""
    message = fallback_text or f"HTTP {status}"
    code = None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(body.get("error"), str):
            message = body["error"]
        if isinstance(body.get("code"), str):
            code = body["code"]
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = InternalError if status >= 500 else CoveError
    return cls(message, code=code, body=body)
