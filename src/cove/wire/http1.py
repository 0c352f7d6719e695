"""HTTP/1.1 heads: the one parser and serializer of request and status lines and headers.

The agent's server, the control plane's client to agents, the WebSocket front
and the runtime all speak plain HTTP/1.1 over unix sockets with no library in
between (the agent has only the standard library, and the proxy hop is hot),
so the head format lives here once. Bodies are the caller's business: these
functions only turn a head into fields and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.wire.numbers import is_number

END = b"\r\n\r\n"  # what ends every head
MAX_HEAD = 64 * 1024  # the longest head any Cove peer reads


class HeadError(ValueError):
    """A head that is not HTTP/1.1 (the peer is broken or not speaking HTTP)."""


@dataclass
class RequestHead:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        query = self.target.partition("?")[2]
        if not query:
            return {}
        # Imported here: urllib.parse (and its ipaddress) is ~2 ms of an agent's
        # start, and the exec a sandbox answers first has no query.
        from urllib.parse import parse_qsl

        return dict(parse_qsl(query))


@dataclass
class StatusHead:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased


# The statuses Cove writes. A table, not `http.HTTPStatus`: the agent imports
# this module in every sandbox, and building that enum costs each one memory.
_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    413: "Content Too Large",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
    426: "Upgrade Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    507: "Insufficient Storage",
}


def reason(status: int) -> str:
    return _REASONS.get(status, "Status")


def _lines(raw: bytes) -> list[str]:
    text = raw.decode("latin-1")
    if text.endswith("\r\n\r\n"):
        text = text[:-4]
    return text.split("\r\n")


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def field_list(raw: bytes) -> list[tuple[str, str]]:
    """A head's header fields in order, repeats kept (Set-Cookie), names lower-cased."""
    fields = []
    for line in _lines(raw)[1:]:
        name, colon, value = line.partition(":")
        if colon:
            fields.append((name.strip().lower(), value.strip()))
    return fields


def parse_request(raw: bytes) -> RequestHead:
    """A request head (through its blank line, or without it)."""
    lines = _lines(raw)
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HeadError(f"not an HTTP/1.1 request line: {lines[0][:80]!r}")
    return RequestHead(parts[0], parts[1], _headers(lines[1:]))


def parse_status(raw: bytes) -> StatusHead:
    """A response head (through its blank line, or without it)."""
    lines = _lines(raw)
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not is_number(parts[1]):
        raise HeadError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    return StatusHead(int(parts[1]), _headers(lines[1:]))


Fields = dict[str, str] | list[tuple[str, str]]


def _fields(headers: Fields | None) -> str:
    items = (headers or {}).items() if isinstance(headers, dict | None) else headers
    return "".join(f"{name}: {value}\r\n" for name, value in items)


def request_head(method: str, target: str, headers: Fields | None = None) -> bytes:
    """`METHOD target HTTP/1.1`, the headers, and the blank line."""
    return f"{method} {target} HTTP/1.1\r\n{_fields(headers)}\r\n".encode("latin-1")


def status_head(status: int, headers: Fields | None = None) -> bytes:
    """`HTTP/1.1 status reason`, the headers, and the blank line."""
    return f"HTTP/1.1 {status} {reason(status)}\r\n{_fields(headers)}\r\n".encode("latin-1")


def response(
    status: int, body: bytes, content_type: str = "application/json", *, close: bool = False
) -> bytes:
    """A whole Content-Length response (none for 204, which has no body)."""
    headers: list[tuple[str, str]] = []
    if status != 204:
        headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    else:
        body = b""
    if close:
        headers.append(("Connection", "close"))
    return status_head(status, headers) + body


def upgrade_accepted(
    accept: str, subprotocol: str | None = None, extensions: str | None = None
) -> bytes:
    """The 101 that accepts a WebSocket upgrade (`accept` from `websocket.accept_key`)."""
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept),
    ]
    if subprotocol:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions:  # what a preview's app agreed to (compression): its frames depend on it
        headers.append(("Sec-WebSocket-Extensions", extensions))
    return status_head(101, headers)


def keeps_alive(headers: dict[str, str]) -> bool:
    """Whether the connection stays open after this message (HTTP/1.1's default)."""
    return headers.get("connection", "").lower() != "close"


def is_websocket_upgrade(headers: dict[str, str]) -> bool:
    return headers.get("upgrade", "").lower() == "websocket"


# A raw byte tunnel through the agent to a port inside the sandbox (previews):
# the control plane asks with an `Upgrade: cove-tunnel` request, the agent
# answers 101 once it is connected to the port, then both sides copy bytes.
TUNNEL_UPGRADE = "cove-tunnel"


def is_tunnel_upgrade(headers: dict[str, str]) -> bool:
    return headers.get("upgrade", "").lower() == TUNNEL_UPGRADE


def tunnel_request(port: int) -> bytes:
    """The request that opens a tunnel to `127.0.0.1:port` inside the sandbox."""
    fields = [("Host", "agent"), ("Upgrade", TUNNEL_UPGRADE), ("Connection", "Upgrade")]
    return request_head("GET", f"/_cove/tunnel/{port}", fields)


def tunnel_accepted() -> bytes:
    return status_head(101, [("Upgrade", TUNNEL_UPGRADE), ("Connection", "Upgrade")])


# Chunked transfer coding (RFC 9112 §7.1): streamed bodies of unknown length.
LAST_CHUNK = b"0\r\n\r\n"
MAX_CHUNK_LINE = 4096  # a size line and any extensions; longer is not HTTP


def chunk_head(size: int) -> bytes:
    """The line that opens a chunk of `size` bytes (the data and a CRLF follow)."""
    return b"%x\r\n" % size


def parse_chunk_size(line: bytes) -> int:
    """A chunk's size from its line (extensions after `;` are ignored)."""
    text = line.split(b";", 1)[0].strip()
    try:
        size = int(text, 16)
    except ValueError:
        raise HeadError(f"not a chunk size line: {line[:40]!r}") from None
    if size < 0 or not text.isalnum():
        raise HeadError(f"not a chunk size line: {line[:40]!r}")
    return size


def is_chunked(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


class RangeError(ValueError):
    """A `Range` header this resource cannot satisfy (the answer is a 416)."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`Range: bytes=a-b` as a half-open `(start, end)` within `size`; None for no range.

    One range only: several would need a multipart/byteranges answer, which no
    client of Cove asks for; they get the whole body (what RFC 9110 allows).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first or last) or not is_number(first + last):
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise RangeError(f"range {header!r} asks for no bytes")
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise RangeError(f"range {header!r} is outside the {size}-byte file")
    return start, end
