"""A WebSocket client to a sandbox's agent, for server features that speak to it themselves.

The toolbox front relays client WebSockets as bytes (`wsfront`); the SSH
server instead is the agent's client: it opens the upgrade on the agent's
endpoint (its unix socket, or a node's relay) and reads and writes messages (`cove.wire.websocket`).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

from cove.runtime.endpoint import AgentEndpoint
from cove.server.agentclient import CONNECT_TIMEOUT, AgentUnreachable
from cove.wire import http1
from cove.wire.errors import CoveError, from_envelope
from cove.wire.websocket import WebSocket, new_key

MAX_REFUSAL = 64 * 1024  # the body of a refused upgrade kept for its message


async def connect(
    endpoint: AgentEndpoint,
    path: str,
    query: dict[str, str] | None = None,
    protocols: tuple[str, ...] = (),
) -> WebSocket:
    """An open WebSocket to `path` on the agent; a refused upgrade raises its CoveError."""
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        sock = await asyncio.wait_for(endpoint.connect(), CONNECT_TIMEOUT)
        reader, writer = await asyncio.open_connection(sock=sock, limit=http1.MAX_HEAD)
    except (OSError, TimeoutError) as exc:
        raise AgentUnreachable(f"cannot connect to the agent: {exc}") from None
    fields = [
        ("Host", "agent"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", new_key()),
        ("Sec-WebSocket-Version", "13"),
    ]
    if protocols:
        fields.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    try:
        writer.write(http1.request_head("GET", target, fields))
        await writer.drain()
        head = http1.parse_status(await reader.readuntil(http1.END))
        if head.status == 101:
            return WebSocket(reader, writer, client=True)
        length = min(int(head.headers.get("content-length") or 0), MAX_REFUSAL)
        body = await reader.readexactly(length) if length else b""
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        writer.close()
        raise AgentUnreachable(f"the agent connection broke: {exc!r}") from None
    writer.close()
    raise refusal(head.status, body)


def refusal(status: int, body: bytes) -> CoveError:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return from_envelope(status, parsed, body.decode("utf-8", "replace")[:200])
