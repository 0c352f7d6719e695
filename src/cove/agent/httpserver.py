"""The agent's HTTP/1.1 + WebSocket server on a unix socket.

Only the control plane's proxy talks to it, so it implements the part of
HTTP/1.1 that proxy uses (Content-Length and chunked bodies, keep-alive,
upgrade), with the standard library alone: it starts in milliseconds inside
every sandbox. Most routes get their body whole (capped); routes added with
`Router.streamed` read it as it arrives (`httpbody.Body`), and any response
may be written as it is produced (`Response.stream`).
Routing is a table of `(method, pattern) -> handler`; handlers raise
`CoveError`s, which become Daytona's error envelope here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cove.agent.httpbody import Body, BodyWriter
from cove.wire import http1
from cove.wire.errors import (
    SOURCE_AGENT,
    BadRequest,
    CoveError,
    InternalError,
    NotFound,
    PayloadTooLarge,
    to_envelope,
)
from cove.wire.websocket import Message, WebSocket, accept_key

MAX_BODY = 64 * 1024 * 1024
# The most of an unread request body read and dropped to keep its answer intact.
DRAIN_LIMIT = 1024 * 1024
DRAIN_TIMEOUT = 2.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    # The body as it arrives, for routes added with `Router.streamed` (else None).
    stream: Body | None = None

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None


# Writes a streamed response's body; the server ends the framing after it.
BodyProducer = Callable[[BodyWriter], Awaitable[None]]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # A body written as it is produced; `length` announces its size (else chunked).
    stream: BodyProducer | None = None
    length: int | None = None


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, ensure_ascii=False).encode())


def no_content() -> Response:
    return Response(204)


Handler = Callable[[Request], Awaitable[Response]]
WsHandler = Callable[[Request, WebSocket], Awaitable[None]]
# Takes over the connection after an `Upgrade: cove-tunnel` request and answers it itself.
TunnelHandler = Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _unquote(value: str) -> str:
    """A path parameter %-decoded; urllib.parse is imported only for one that needs it."""
    if "%" not in value:
        return value
    from urllib.parse import unquote  # ~2 ms of every agent start otherwise

    return unquote(value)


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Any]] = []
        self._streamed: set[Any] = set()
        # Path prefixes whose routes are added by their loader on the first request
        # under them (a feature imported only when used: every import is time and
        # memory of every sandbox's start).
        self._deferred: list[tuple[tuple[str, ...], Callable[[], None]]] = []

    @staticmethod
    def _compile(pattern: str) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, self._compile(pattern), handler))

    def streamed(self, method: str, pattern: str, handler: Handler) -> None:
        """A route whose handler reads the request body itself, from `req.stream`."""
        self.add(method, pattern, handler)
        self._streamed.add(handler)

    def is_streamed(self, handler: Any) -> bool:
        return handler in self._streamed

    def websocket(self, pattern: str, handler: WsHandler) -> None:
        self._routes.append(("WS", self._compile(pattern), handler))

    def tunnel(self, pattern: str, handler: TunnelHandler) -> None:
        self._routes.append(("TUNNEL", self._compile(pattern), handler))

    def defer(self, prefixes: tuple[str, ...], load: Callable[[], None]) -> None:
        """Call `load` (which adds routes) before matching any path under `prefixes`."""
        self._deferred.append((prefixes, load))

    def _load_deferred(self, path: str) -> None:
        for entry in list(self._deferred):
            prefixes, load = entry
            if any(path == p or path.startswith(p + "/") for p in prefixes):
                try:
                    load()
                except Exception as exc:  # it stays deferred: each request says why again
                    raise InternalError(
                        f"the agent could not load its routes under {prefixes[0]}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                self._deferred.remove(entry)

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]]:
        if self._deferred:
            self._load_deferred(path)
        path_known = False
        for m, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            path_known = True
            if m == method:
                return handler, {k: _unquote(v) for k, v in found.groupdict().items()}
        if path_known:
            raise BadRequest(f"method {method} is not allowed on {path}")
        raise NotFound(f"no such endpoint: {method} {path}")


class PendingWebSocket(WebSocket):
    """A server WebSocket that answers the upgrade on its first use.

    A handler that refuses (unknown session, duplicate PTY id) raises before
    sending or receiving anything, and the client then gets the HTTP status
    (404, 409...) instead of a 101 followed by a close: Daytona's SDK maps
    the status of a refused upgrade to its typed exceptions.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handshake: bytes
    ) -> None:
        super().__init__(reader, writer, client=False)
        self._handshake = handshake
        self.accepted = False

    async def accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            self.writer.write(self._handshake)
            await self.writer.drain()

    async def recv(self) -> Message:
        await self.accept()
        return await super().recv()

    async def _send_parts(self, opcode: int, parts: Sequence[bytes]) -> None:
        await self.accept()
        await super()._send_parts(opcode, parts)


class HttpServer:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass  # the peer left, or sent a head (or chunk line) longer than any Cove peer sends
        except http1.HeadError as exc:  # only the control plane connects: a bug there
            print(f"agent: dropped a connection: {exc}", file=sys.stderr)
        except OSError as exc:  # a streamed answer's file failed mid-way: the peer sees it cut
            print(f"agent: ended a connection mid-answer: {exc!r}", file=sys.stderr)
        finally:
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = await reader.readuntil(http1.END)
        except asyncio.IncompleteReadError:
            return False
        parsed = http1.parse_request(head)
        headers, path = parsed.headers, parsed.path
        req = Request(parsed.method, path, parsed.query, headers)
        body = Body(reader, headers)
        if http1.is_websocket_upgrade(headers):  # a GET: no body
            await self._websocket(req, reader, writer)
            return False
        if http1.is_tunnel_upgrade(headers):
            await self._tunnel(req, reader, writer)
            return False
        try:
            handler, req.params = self.router.match(req.method, req.path)
            if self.router.is_streamed(handler):
                req.stream = body
            else:
                req.body = await body.read_all(MAX_BODY)
        except OverflowError:
            err = PayloadTooLarge(f"request body exceeds the agent's {MAX_BODY}-byte limit")
            await self._write(writer, self._error(err, path), close=True)
            return False
        except CoveError as err:
            response = self._error(err, path)
        else:
            response = await self._dispatch(req, handler)
        # A body left unread (refused early, or a handler that stopped reading): a
        # small rest is read and dropped, since closing a socket with unread input
        # resets it and the peer can lose the answer already sent; a large one is
        # not worth reading, so the connection ends after the answer.
        if not body.done:
            with contextlib.suppress(
                TimeoutError, asyncio.IncompleteReadError, ConnectionError, http1.HeadError
            ):
                await asyncio.wait_for(body.discard(DRAIN_LIMIT), DRAIN_TIMEOUT)
        close = not body.done or not http1.keeps_alive(headers)
        await self._write(writer, response, close=close)
        return not close

    async def _dispatch(self, req: Request, handler: Handler) -> Response:
        try:
            return await handler(req)
        except CoveError as err:
            return self._error(err, req.path)
        except Exception as exc:  # a bug: say what failed instead of dropping the connection
            traceback.print_exc(file=sys.stderr)
            return self._error(InternalError(f"agent error: {type(exc).__name__}: {exc}"), req.path)

    @staticmethod
    def _error(err: CoveError, path: str) -> Response:
        return json_response(to_envelope(err, path, SOURCE_AGENT), err.status)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, r: Response, *, close: bool = False) -> None:
        if r.stream is None and not r.headers:
            writer.write(http1.response(r.status, r.body, r.content_type, close=close))
            await writer.drain()
            return
        fields = [("Content-Type", r.content_type), *r.headers]
        chunked = r.stream is not None and r.length is None
        if chunked:
            fields.append(("Transfer-Encoding", "chunked"))
        else:
            fields.append(("Content-Length", str(r.length if r.stream else len(r.body))))
        if close:
            fields.append(("Connection", "close"))
        writer.write(http1.status_head(r.status, fields))
        if r.stream is None:
            writer.write(r.body)
            await writer.drain()
            return
        out = BodyWriter(writer, chunked)
        await r.stream(out)
        if not chunked and out.sent != r.length:
            # The file changed under us: the peer must not take a short body as whole.
            raise ConnectionAbortedError(f"sent {out.sent} of {r.length} announced bytes")
        await out.finish()

    async def _tunnel(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            handler, req.params = self.router.match("TUNNEL", req.path)
            await handler(req, reader, writer)
        except CoveError as err:  # refused before the 101 (a handler answers nothing after it)
            await self._write(writer, self._error(err, req.path), close=True)

    async def _websocket(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            handler, req.params = self.router.match("WS", req.path)
        except CoveError as err:
            await self._write(writer, self._error(err, req.path))
            return
        key = req.headers.get("sec-websocket-key", "")
        # Select the first offered subprotocol (the PTY exit-control one).
        offered = req.headers.get("sec-websocket-protocol")
        subprotocol = offered.split(",")[0].strip() if offered else None
        handshake = http1.upgrade_accepted(accept_key(key), subprotocol)
        ws = PendingWebSocket(reader, writer, handshake)
        try:
            await handler(req, ws)
        except CoveError as err:
            if not ws.accepted:  # refused before any frame: a plain HTTP answer
                await self._write(writer, self._error(err, req.path))
                return
            await ws.close(4000 + err.status if err.status < 1000 else 1011, err.message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            await ws.close(1011, f"agent error: {type(exc).__name__}")
        else:
            await ws.close(1000)
