"""The SSH access routes under /api (Daytona's paths; the models in `wire.protocol.ssh`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cove.server.api import owner, sandbox_json
from cove.server.sshaccess import SshAccessService, parse_minutes
from cove.wire.errors import BadRequest

ORG_HEADER = "x-daytona-organization-id"


class SshAccessRoutes:
    def __init__(self, access: SshAccessService) -> None:
        self.access = access

    def routes(self) -> list[Route]:
        return [
            # Before `/sandbox/{ref}/...`: "ssh-access" is no sandbox.
            Route("/sandbox/ssh-access/validate", self.validate, methods=["GET"]),
            Route("/sandbox/{ref}/ssh-access", self.create, methods=["POST"]),
            Route("/sandbox/{ref}/ssh-access", self.revoke, methods=["DELETE"]),
        ]

    async def create(self, request: Request) -> Response:
        minutes = parse_minutes(request.query_params.get("expiresInMinutes"))
        host = request.url.hostname or "127.0.0.1"
        grant = self.access.create(owner(request), request.path_params["ref"], minutes, host)
        return JSONResponse(grant.to_wire())

    async def validate(self, request: Request) -> Response:
        token = request.query_params.get("token")
        if not token:
            raise BadRequest("query 'token' is required")
        return JSONResponse(self.access.validate(owner(request), token).to_wire())

    async def revoke(self, request: Request) -> Response:
        # None: every token of the sandbox. The official SDK (0.226) passes the
        # token positionally into the generated client's second parameter, so it
        # arrives as the X-Daytona-Organization-ID header, not the query: Cove
        # has no organizations, and reads the header as the token it means.
        token = request.query_params.get("token") or request.headers.get(ORG_HEADER) or None
        record = self.access.revoke(owner(request), request.path_params["ref"], token)
        return JSONResponse(sandbox_json(self.access.sandboxes, record, request))
