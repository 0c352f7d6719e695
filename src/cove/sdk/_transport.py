"""The only I/O of the SDK: send a `Call`, open a WebSocket. One class per face.

Both transports do the same three things with their own I/O library: send the
request, map transport failures to Cove errors, hand the status and text to
`Call.finish` (shared). WebSocket handshake refusals become the error the
server's envelope names, like any HTTP error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection as AsyncWebSocket
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection as SyncWebSocket
from websockets.sync.client import connect as sync_connect

from cove.sdk._base import CONNECT_TIMEOUT, Call, Endpoints, headers
from cove.sdk.errors import error_from_response, read_timeout, unreachable
from cove.wire.errors import CoveError

T = TypeVar("T")

# Interpreter results (plots) and log backlogs can be large.
WS_MAX_MESSAGE = 64 * 1024 * 1024


def _timeout(seconds: float | None) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=CONNECT_TIMEOUT)


def _transport_error(exc: Exception, call: Call[Any]) -> CoveError:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return read_timeout(call.what, call.timeout)
    return unreachable(call.url, exc)


def _handshake_error(exc: Exception, url: str, what: str) -> CoveError:
    if isinstance(exc, InvalidStatus):
        body = exc.response.body or b""
        return error_from_response(exc.response.status_code, body.decode("utf-8", "replace"), what)
    return unreachable(url, exc)


class _Base:
    def __init__(self, api_url: str, api_key: str, face: str, trust_env: bool) -> None:
        self.endpoints = Endpoints(api_url)
        self.headers = headers(api_key, face)
        # Embedded servers are on loopback: proxies from the environment must not apply.
        self.trust_env = trust_env

    def ws_kwargs(self, subprotocols: list[str] | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "additional_headers": self.headers,
            "max_size": WS_MAX_MESSAGE,
            "open_timeout": CONNECT_TIMEOUT,
            "compression": None,
        }
        if subprotocols:
            kwargs["subprotocols"] = subprotocols
        if not self.trust_env:
            kwargs["proxy"] = None
        return kwargs


class SyncTransport(_Base):
    def __init__(self, api_url: str, api_key: str, trust_env: bool = True) -> None:
        super().__init__(api_url, api_key, "", trust_env)
        self.client = httpx.Client(headers=self.headers, trust_env=trust_env)

    def call(self, call: Call[T]) -> T:
        try:
            r = self.client.request(
                call.method,
                call.url,
                json=call.json,
                params=call.params,
                content=call.content,
                headers=call.headers,
                timeout=_timeout(call.timeout),
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, call) from None
        return call.finish(r.status_code, r.text)

    @contextmanager
    def stream(self, call: Call[Any]) -> Iterator[Iterator[bytes]]:
        """The answer's body in pieces as they arrive (file downloads)."""
        try:
            with self.client.stream(
                call.method, call.url, params=call.params, headers=call.headers,
                content=call.content, timeout=_timeout(call.timeout),
            ) as r:  # fmt: skip
                if r.status_code >= 400:
                    r.read()
                    raise error_from_response(r.status_code, r.text, call.what)
                yield r.iter_bytes()
        except httpx.HTTPError as exc:
            raise _transport_error(exc, call) from None

    def websocket(
        self, url: str, what: str, subprotocols: list[str] | None = None
    ) -> SyncWebSocket:
        # legacy=True: a connected socket now, closed by its owner (a `with` block,
        # or a PTY handle that outlives this call), not a context manager to enter.
        try:
            return sync_connect(Endpoints.ws(url), legacy=True, **self.ws_kwargs(subprotocols))
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise _handshake_error(exc, url, what) from None

    def close(self) -> None:
        self.client.close()


class AsyncTransport(_Base):
    def __init__(self, api_url: str, api_key: str, trust_env: bool = True) -> None:
        super().__init__(api_url, api_key, "-async", trust_env)
        self.client = httpx.AsyncClient(headers=self.headers, trust_env=trust_env)

    async def call(self, call: Call[T]) -> T:
        try:
            r = await self.client.request(
                call.method,
                call.url,
                json=call.json,
                params=call.params,
                content=call.content,
                headers=call.headers,
                timeout=_timeout(call.timeout),
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, call) from None
        return call.finish(r.status_code, r.text)

    @asynccontextmanager
    async def stream(self, call: Call[Any]) -> AsyncIterator[AsyncIterator[bytes]]:
        """The answer's body in pieces as they arrive (file downloads)."""
        try:
            async with self.client.stream(
                call.method, call.url, params=call.params, headers=call.headers,
                content=call.content, timeout=_timeout(call.timeout),
            ) as r:  # fmt: skip
                if r.status_code >= 400:
                    await r.aread()
                    raise error_from_response(r.status_code, r.text, call.what)
                yield r.aiter_bytes()
        except httpx.HTTPError as exc:
            raise _transport_error(exc, call) from None

    async def websocket(
        self, url: str, what: str, subprotocols: list[str] | None = None
    ) -> AsyncWebSocket:
        return await open_async_websocket(url, what, self.ws_kwargs(subprotocols))

    async def close(self) -> None:
        await self.client.aclose()


async def open_async_websocket(url: str, what: str, kwargs: dict[str, Any]) -> AsyncWebSocket:
    """Also used by the sync face's `*_async` log methods (Daytona makes them coroutines)."""
    try:
        return await async_connect(Endpoints.ws(url), **kwargs)
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        raise _handshake_error(exc, url, what) from None
