"""Errors to responses, in one place for the whole server."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from cove.wire.errors import SOURCE_API, CoveError, InternalError, to_envelope

log = logging.getLogger("cove.server")


def error_response(err: CoveError, path: str) -> JSONResponse:
    return JSONResponse(to_envelope(err, path, SOURCE_API), status_code=err.status)


async def reject(scope: Scope, receive: Receive, send: Send, err: CoveError) -> None:
    """Answer a request or a WebSocket upgrade with an error envelope."""
    response = error_response(err, scope["path"])
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    # A WebSocket: deny the upgrade with the HTTP response where the server
    # supports it (uvicorn does), so clients see the real status.
    ws = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await ws.send_denial_response(response)
    else:
        await ws.close(code=1008, reason=err.message[:120])


async def handle_cove_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoveError)
    return error_response(exc, request.url.path)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    err = InternalError(f"internal error: {type(exc).__name__}: {exc}")
    return error_response(err, request.url.path)
