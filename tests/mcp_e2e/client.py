"""The mcp SDK's own client against `cove mcp` (stdio) or the server's /mcp (HTTP)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent

from tests.serverproc import COVE, ServerProcess


def stdio_params(server: ServerProcess, key: str | None = None) -> StdioServerParameters:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env = {**clean, "COVE_API_URL": server.api_url, "COVE_API_KEY": key or server.key}
    return StdioServerParameters(command=COVE, args=["mcp"], env=env)


@asynccontextmanager
async def stdio_client(server: ServerProcess, key: str | None = None) -> AsyncIterator[Client]:
    async with Client(stdio_params(server, key), read_timeout_seconds=120) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def call(client: Client, name: str, **args: Any) -> dict[str, Any]:
    """A tool call that must succeed; its structured answer."""
    result = await client.call_tool(name, args)
    assert not result.is_error, f"{name} failed: {text_of(result)}"
    data = json.loads(text_of(result))
    assert isinstance(data, dict)
    return data


async def call_error(client: Client, name: str, **args: Any) -> str:
    """A tool call that must fail as a tool error (not a protocol error); its text."""
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name} should have failed: {text_of(result)}"
    return text_of(result)


def decode_png(data: bytes) -> tuple[int, int]:
    """Decode a PNG far enough to prove it whole: chunks, CRCs, and the pixel
    data's inflated size against the header. Returns (width, height)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
        if kind == b"IEND":
            break
    assert header is not None, "no IHDR"
    width, height, depth, color = header[:4]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    row = 1 + (width * channels * depth + 7) // 8
    assert len(zlib.decompress(idat)) == height * row, "pixel data does not match the header"
    return width, height


@asynccontextmanager
async def http_client(
    server: ServerProcess, key: str | None, host: str | None = None
) -> AsyncIterator[Client]:
    """The mcp SDK's client on the control plane's /mcp, with `key` as Bearer
    (or none), and `host` as the Host header if given (as behind a proxy)."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if host:
        headers["Host"] = host
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
        async with Client(transport, read_timeout_seconds=120) as client:
            yield client
