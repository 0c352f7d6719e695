"""The app's side of a preview: a tunnel through the agent, and the request head the app gets.

`open_tunnel` asks the sandbox's agent for a byte tunnel to the port (its 101
means it is connected; a 502 means nothing listens there). Over the tunnel
the control plane speaks to the app as a reverse proxy would: hop-by-hop
headers dropped, the preview's own credential taken out, `X-Forwarded-*`
added (with `X-Forwarded-Prefix` in the path form, which frameworks use to
build links under the prefix).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

from cove.runtime.endpoint import AgentEndpoint
from cove.server.agentclient import CONNECT_TIMEOUT, STREAM_LIMIT, AgentUnreachable
from cove.server.preview.access import COOKIE, TOKEN_HEADER, strip_cookie
from cove.wire import http1
from cove.wire.errors import CoveError, from_envelope

# Headers about one connection, never passed on (RFC 9110 §7.6.1), plus ours.
HOP_BY_HOP = frozenset(
    (
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate",
        "expect", TOKEN_HEADER,
    )
)  # fmt: skip
# A WebSocket upgrade keeps these (the app answers the handshake itself).
WS_KEEP = ("upgrade", "connection")


async def open_tunnel(
    endpoint: AgentEndpoint, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the app on `port`; `AgentUnreachable`, or the agent's refusal as an error."""
    try:
        sock = await asyncio.wait_for(endpoint.connect(), CONNECT_TIMEOUT)
        reader, writer = await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)
    except (OSError, TimeoutError) as exc:
        raise AgentUnreachable(f"cannot connect to the agent: {exc}") from None
    try:
        writer.write(http1.tunnel_request(port))
        raw = await reader.readuntil(http1.END)
        head = http1.parse_status(raw)
        if head.status != 101:
            body = await reader.read(min(int(head.headers.get("content-length") or 0), 65536))
            raise refusal(head.status, body)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        writer.close()
        raise AgentUnreachable(f"the agent connection broke: {exc!r}") from None
    except BaseException:
        writer.close()
        raise
    return reader, writer


def refusal(status: int, body: bytes) -> CoveError:
    try:
        envelope = json.loads(body) if body else None
    except ValueError:
        envelope = None
    return from_envelope(status, envelope, body.decode(errors="replace")[:200])


def request_head(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    *,
    prefix: str,
    client: str,
    scheme: str,
    websocket: bool = False,
    keep_alive: bool = False,
) -> bytes:
    """The head the app gets for one request (`headers`: the client's, names lower-case)."""
    fields: list[tuple[str, str]] = []
    host = ""
    chunked = False
    forwarded_for = ""
    for name, value in headers:
        if name == "host":
            host = value
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "x-forwarded-for":
            forwarded_for = value
        if name == "cookie" and COOKIE in value:
            value = strip_cookie(value)
            if not value:
                continue
        if name in HOP_BY_HOP and not (websocket and name in WS_KEEP):
            continue
        fields.append((name, value))
    if chunked:
        fields.append(("transfer-encoding", "chunked"))
    if not websocket and not keep_alive:
        fields.append(("connection", "close"))  # this tunnel ends with this exchange
    fields.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
    fields.append(("x-forwarded-proto", scheme))
    if host:
        fields.append(("x-forwarded-host", host))
    if prefix:
        fields.append(("x-forwarded-prefix", prefix))
    return http1.request_head(method, target, fields)


# In the path form an app shares the control plane's origin: these answer headers
# would let it act on the whole origin (a service worker scoped to `/` that reads
# the dashboard's pages, or wiping the dashboard's cookies), so they are dropped.
SAME_ORIGIN_REACH = frozenset({"service-worker-allowed", "clear-site-data"})


def response_headers(headers: list[tuple[str, str]], prefix: str) -> list[tuple[bytes, bytes]]:
    """The app's answer headers for the client: hop-by-hop dropped; in the path form,
    absolute redirects and cookie paths moved under the prefix."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name in HOP_BY_HOP or (prefix and name in SAME_ORIGIN_REACH):
            continue
        if prefix and name == "location" and value.startswith("/") and not value.startswith("//"):
            value = prefix + value
        elif prefix and name == "set-cookie":
            value = _cookie_under(value, prefix)
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out


def _cookie_under(value: str, prefix: str) -> str:
    """A cookie the app sets, scoped to the app's prefix (`Path=/` would reach every preview)."""
    parts = [p.strip() for p in value.split(";")]
    for i, part in enumerate(parts[1:], 1):
        key, _, path = part.partition("=")
        if key.strip().lower() == "path":
            parts[i] = f"Path={prefix}{path.strip() if path.strip().startswith('/') else '/'}"
            return "; ".join(parts)
    return "; ".join([*parts, f"Path={prefix}/"])
