"""Everything the sync and async clients share that does no I/O.

A `Call` is one HTTP request, fully described (method, URL, body, timeout),
with the function that turns the response into the caller's result. The
builders below make every call the SDK sends; the two transports in
`_transport.py` only send them. So request building, response parsing and
error mapping exist once for both faces (as httpx's `BaseClient` does).
Bodies are written and answers read by the wire models of
`cove.wire.protocol` (`wire_body`, `WireModel.from_wire`), the same classes
the agent and the server use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from cove.sdk.errors import error_from_response
from cove.wire.errors import BadRequest, InternalError
from cove.wire.model import WireModel

T = TypeVar("T")

# Read timeout for lifecycle calls: creating a sandbox starts it before answering.
LIFECYCLE_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0
SDK_NAME = "cove-python"


@dataclass
class CoveConfig:
    """Where the server is and how to authenticate; `None` fields come from the env.

    `api_url` is the URL the official SDK takes as `DAYTONA_API_URL`, e.g.
    `http://127.0.0.1:3000/api` (env `COVE_API_URL`). With no URL anywhere the
    client runs embedded: an in-process control plane with its data in
    `data_dir` (default `$XDG_CACHE_HOME/cove` or `~/.cache/cove`).
    """

    api_url: str | None = None
    api_key: str | None = None
    data_dir: str | None = None

    def resolved(self) -> CoveConfig:
        url = self.api_url or os.environ.get("COVE_API_URL") or None
        key = self.api_key or os.environ.get("COVE_API_KEY") or None
        if url is not None:
            url = url.rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise BadRequest(f"api_url must start with http:// or https://, got {url!r}")
        return CoveConfig(url, key, self.data_dir)


def default_embedded_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cove")


def headers(api_key: str, face: str) -> dict[str, str]:
    from cove import __version__

    return {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": f"{SDK_NAME}{face}/{__version__}",
        "Accept": "application/json",
    }


def seg(value: str) -> str:
    """A path segment, percent-encoded (ids may hold anything but are one segment)."""
    return quote(str(value), safe="")


@dataclass
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    url: str
    what: str  # the operation, for error messages: "exec", "create sandbox"...
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, str] | None = None
    # Read timeout in seconds; None waits as long as the server takes.
    timeout: float | None = LIFECYCLE_TIMEOUT
    expect_body: bool = True
    # A streamed request body (an iterator of bytes on the sync face, an async
    # one on the async face) and its headers: file uploads.
    content: Any = None
    headers: dict[str, str] | None = None

    def finish(self, status: int, text: str) -> T:
        """The parsed result, or the error the server described.

        A timed-out command's error body is its answer as far as it got: it is
        read with `parse` too, into the `CommandTimeout`'s `response`.
        """
        if status >= 400:
            raise error_from_response(status, text, self.what, self.read)
        if not self.expect_body or status == 204 or not text:
            return self.read(None)
        try:
            data = json.loads(text)
        except ValueError:
            raise error_from_response(500, text, self.what) from None
        return self.read(data)

    def read(self, data: Any) -> T:
        """`parse(data)`; an answer the wire model refuses is the server's fault, not ours."""
        try:
            return self.parse(data)
        except BadRequest as err:
            raise InternalError(
                f"{self.what} failed: the server's answer does not fit the protocol: {err.message}"
            ) from None


def wire_body(model: WireModel) -> dict[str, Any]:
    """A request model's JSON without its unset (None) fields: the server's defaults apply."""
    return {k: v for k, v in model.to_wire().items() if v is not None}


def _none(_: Any) -> None:
    return None


def _same(data: Any) -> Any:
    return data


@dataclass
class Endpoints:
    """URLs of one server: the API and (per sandbox) the toolbox."""

    api_url: str

    def api(self, path: str) -> str:
        return self.api_url + path

    @staticmethod
    def toolbox(toolbox_url: str, sandbox_id: str, path: str) -> str:
        return f"{toolbox_url.rstrip('/')}/{sandbox_id}{path}"

    @staticmethod
    def ws(url: str) -> str:
        if url.startswith("https://"):
            return "wss://" + url[len("https://") :]
        return "ws://" + url.removeprefix("http://")


def exec_timeout(timeout: float | None) -> float | None:
    """Read timeout for a command given `timeout` seconds: the server answers first."""
    return None if not timeout else float(timeout) + 5.0


@dataclass
class Toolbox:
    """Builds the toolbox calls of one sandbox."""

    base: str  # toolboxProxyUrl
    sandbox_id: str
    language: str = "python"

    def url(self, path: str) -> str:
        return Endpoints.toolbox(self.base, self.sandbox_id, path)

    def call(
        self,
        method: str,
        path: str,
        what: str,
        parse: Callable[[Any], T] = _same,
        json: Any = None,
        timeout: float | None = LIFECYCLE_TIMEOUT,
        params: dict[str, str] | None = None,
    ) -> Call[T]:
        return Call(method, self.url(path), what, parse, json, params, timeout)

    def void(self, method: str, path: str, what: str, json: Any = None) -> Call[None]:
        return Call(method, self.url(path), what, _none, json, None, LIFECYCLE_TIMEOUT, False)
