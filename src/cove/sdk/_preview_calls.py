"""Preview-link calls (control plane, `/api/sandbox/{id}/ports/{port}/...`), built once
for both faces of `Sandbox`: the link and its token, signed expiring links, the public flag."""

from __future__ import annotations

from typing import Any

from cove.sdk._base import Call, Endpoints, seg
from cove.wire.errors import BadRequest
from cove.wire.protocol import PortPreviewUrl, Sandbox, SignedPortPreviewUrl


def _port(port: int) -> int:
    # Checked here too, so a typo fails before a round trip, with the server's wording.
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadRequest(f"port must be a number from 1 to 65535, got {port!r}")
    return port


class PreviewCalls:
    def __init__(self, endpoints: Endpoints, sandbox_id: str) -> None:
        self.ep = endpoints
        self.sid = sandbox_id

    def _url(self, port: int, rest: str = "") -> str:
        return self.ep.api(f"/sandbox/{seg(self.sid)}/ports/{_port(port)}{rest}")

    def link(self, port: int) -> Call[PortPreviewUrl]:
        def parse(data: Any) -> PortPreviewUrl:
            return PortPreviewUrl.from_wire(data, "preview link")

        return Call("GET", self._url(port, "/preview-url"), "get preview link", parse)

    def signed(self, port: int, expires_in_seconds: int | None) -> Call[SignedPortPreviewUrl]:
        def parse(data: Any) -> SignedPortPreviewUrl:
            return SignedPortPreviewUrl.from_wire(data, "signed preview link")

        params = None
        if expires_in_seconds is not None:
            params = {"expiresInSeconds": str(expires_in_seconds)}
        url = self._url(port, "/signed-preview-url")
        return Call("GET", url, "create signed preview url", parse, params=params)

    def expire(self, port: int, token: str) -> Call[None]:
        url = self._url(port, f"/signed-preview-url/{seg(token)}/expire")
        return Call("POST", url, "expire signed preview url", lambda _: None, expect_body=False)

    def set_public(self, public: bool) -> Call[Sandbox]:
        url = self.ep.api(f"/sandbox/{seg(self.sid)}/public/{'true' if public else 'false'}")
        return Call("POST", url, "set public", lambda d: Sandbox.from_wire(d, "sandbox"))
