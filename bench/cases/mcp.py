"""The added latency of an `exec` of `true` through MCP (stdio and HTTP),
against the same call through the Cove SDK, all in the same run.

MCP's `exec` runs the command as a session command it follows (so it can
report progress and kill the command on cancel): the figure includes that,
and the MCP framing, on top of the SDK's plain exec.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bench.client import Cove
from bench.stats import Row, Summary
from cove.sdk import AsyncCove
from tests.mcp_e2e.client import http_client, stdio_client


async def _timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        await fn()
    out: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _over(connect: AbstractAsyncContextManager[Any], sid: str, runs: int) -> list[float]:
    async with connect as client:

        async def once() -> None:
            r = await client.call_tool("exec", {"sandbox_id": sid, "command": "true"})
            if r.is_error:
                raise RuntimeError(f"MCP exec failed: {r.content}")

        return await _timed(once, runs)


async def _sdk(cove: Cove, sid: str, runs: int) -> list[float]:
    async with AsyncCove(api_url=cove.server.api_url, api_key=cove.server.key, keep=True) as c:
        sb = await c.get(sid)
        return await _timed(lambda: sb.process.exec("true"), runs)


def measure(cove: Cove, sid: str, runs: int) -> list[Row]:
    async def all_three() -> tuple[list[float], list[float], list[float]]:
        base = await _sdk(cove, sid, runs)
        stdio = await _over(stdio_client(cove.server), sid, runs)
        http = await _over(http_client(cove.server, cove.server.key), sid, runs)
        return base, stdio, http

    base, stdio, http = asyncio.run(all_three())
    rows = []
    for key, name, samples in (
        ("mcp_stdio", "stdio (`cove mcp`)", stdio),
        ("mcp_http", "HTTP (/mcp)", http),
    ):
        rows.append(
            Row(
                key,
                f"Exec of `true` through MCP over {name}",
                Summary.of(samples, "ms"),
                Summary.of(base, "ms"),
                "`sandbox.process.exec('true')` through the async Cove SDK",
                note="MCP exec follows a session command (progress, kill on cancel)",
                samples=samples,
                baseline_samples=base,
            )
        )
    return rows


__all__ = ["measure"]
