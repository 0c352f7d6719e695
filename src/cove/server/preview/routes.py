"""The REST side of previews, in Daytona's paths: links, signed links, the public flag."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cove.server.api import owner, sandbox_json
from cove.server.preview.access import PreviewAccess
from cove.server.preview.address import parse_port
from cove.server.sandboxes import SandboxService
from cove.wire.errors import BadRequest
from cove.wire.protocol.preview import PortPreviewUrl, SignedPortPreviewUrl


class PreviewRoutes:
    def __init__(self, service: SandboxService, access: PreviewAccess, domain: str) -> None:
        self.service = service
        self.access = access
        self.domain = domain

    def routes(self) -> list[Route]:
        base = "/sandbox/{ref}/ports/{port}"
        return [
            Route(f"{base}/preview-url", self.preview_url, methods=["GET"]),
            Route(f"{base}/signed-preview-url", self.signed_url, methods=["GET"]),
            Route(f"{base}/signed-preview-url/{{token}}/expire", self.expire, methods=["POST"]),
            Route("/sandbox/{ref}/public/{flag}", self.set_public, methods=["POST"]),
        ]

    def url(self, request: Request, ref: str, port: int) -> str:
        """The link as the client reached us: host form under the domain, else path form."""
        base = request.base_url
        if self.domain:
            at = f":{base.port}" if base.port else ""
            return f"{base.scheme}://{port}-{ref}.{self.domain}{at}"
        return f"{str(base).rstrip('/')}/preview/{ref}/{port}"

    async def preview_url(self, request: Request) -> Response:
        record = self.service.get(owner(request), request.path_params["ref"])
        port = parse_port(request.path_params["port"])
        link = PortPreviewUrl(
            sandbox_id=record.id,
            url=self.url(request, record.id, port),
            token=self.access.token_for(record.id),
        )
        return JSONResponse(link.to_wire())

    async def signed_url(self, request: Request) -> Response:
        record = self.service.get(owner(request), request.path_params["ref"])
        port = parse_port(request.path_params["port"])
        raw = request.query_params.get("expiresInSeconds")
        seconds = None
        if raw is not None:
            try:
                seconds = int(float(raw))
            except ValueError:
                raise BadRequest(f"expiresInSeconds must be a number, got {raw!r}") from None
        token, expires_at = self.access.sign(record, port, seconds)
        signed = SignedPortPreviewUrl(
            sandbox_id=record.id,
            port=port,
            token=token,
            url=self.url(request, token, port),
            expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)),
        )
        return JSONResponse(signed.to_wire())

    async def expire(self, request: Request) -> Response:
        record = self.service.get(owner(request), request.path_params["ref"])
        port = parse_port(request.path_params["port"])
        self.access.expire(record, port, request.path_params["token"])
        return Response(status_code=200)

    async def set_public(self, request: Request) -> Response:
        flag = request.path_params["flag"].lower()
        if flag not in ("true", "false"):
            raise BadRequest(f"isPublic must be true or false, got {flag!r}")
        record = self.service.set_public(owner(request), request.path_params["ref"], flag == "true")
        return JSONResponse(sandbox_json(self.service, record, request))
