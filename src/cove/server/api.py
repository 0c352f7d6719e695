"""The control-plane REST API under /api, in Daytona's shapes (wire page §3)."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cove.runtime.base import NodeUsage
from cove.server.records import SandboxRecord, SandboxState
from cove.server.sandboxes import SandboxService
from cove.wire.errors import BadRequest, NotFound, PayloadTooLarge
from cove.wire.numbers import is_number
from cove.wire.protocol import (
    CreateSandboxRequest,
    NetworkSettings,
    Sandbox,
    SandboxList,
    UpdateNetworkSettings,
)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def toolbox_url(request: Request) -> str:
    """`http://HOST:PORT/toolbox`, as the client reached us (no trailing slash)."""
    base = str(request.base_url).rstrip("/")
    return f"{base}/toolbox"


def render(r: SandboxRecord, request: Request, egress: bool) -> dict[str, Any]:
    """The Sandbox JSON; `egress` False: this server gives sandboxes loopback only."""
    sp = r.spec
    net = sp.network
    return Sandbox(
        id=r.id,
        name=r.name,
        state=r.state.value,
        env=sp.env,
        labels=sp.labels,
        cpu=sp.cpu,
        memory=sp.memory,
        disk=sp.disk,
        toolbox_proxy_url=toolbox_url(request),
        created_at=_iso(r.created_at),
        updated_at=_iso(r.updated_at),
        last_activity_at=_iso(r.last_activity_at),
        error_reason=r.error_reason,
        recoverable=r.state == SandboxState.ERROR,
        public=sp.public,
        network_block_all=net.network_block_all or not egress,
        network_allow_list=",".join(net.network_allow_list) or None,
        domain_allow_list=",".join(net.domain_allow_list) or None,
        outbound_proxy_url=net.outbound_proxy_url,
        network_deny_list=",".join(net.network_deny_list) or None,
        auto_stop_interval=sp.auto_stop_interval,
        auto_delete_interval=sp.auto_delete_interval,
        auto_archive_interval=sp.auto_archive_interval,
        auto_pause_interval=sp.auto_pause_interval,
        auto_destroy_at=_iso(sp.destroy_at) if sp.destroy_at is not None else None,
        linked_sandbox_id=sp.linked_sandbox_id,
        desired_state=(
            SandboxState.STOPPED.value
            if r.state in (SandboxState.STOPPED, SandboxState.STOPPING)
            else SandboxState.STARTED.value
        ),
        runner_id=r.runtime.get("node"),
    ).to_wire()


def sandbox_json(service: SandboxService, r: SandboxRecord, request: Request) -> dict[str, Any]:
    """The Sandbox JSON, with the egress actually in force on this server."""
    return render(r, request, egress=service.network_note() is None)


def render_node(n: NodeUsage) -> dict[str, Any]:
    free = {k: round(v - n.used.get(k, 0.0), 2) for k, v in n.capacity.items()}
    return {
        "id": n.id,
        "alive": n.alive,
        "capacity": n.capacity,
        "used": n.used,
        "free": free,
        "sandboxes": n.sandboxes,
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and is_number(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
    return bytes(body)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    if not body:
        return {}
    try:
        # NaN and Infinity are Python's extensions, not JSON: refused here so
        # that no model ever sees a non-finite number.
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request body is not valid JSON: nested too deeply") from None


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, bounded in size; clear 4xx errors otherwise."""
    return parse_json(await read_body(request, limit))


def owner(request: Request) -> str:
    return str(request.state.owner)


# execve takes at most 128 KiB per "KEY=value" string (MAX_ARG_STRLEN) and, with
# the usual 8 MiB stack limit, 2 MiB for argv and environment together: a
# sandbox's env may use half, the rest is for each command's own arguments.
ENV_STRING_MAX = 128 * 1024
ENV_TOTAL_MAX = 1024 * 1024


def _check_env_fits_execve(env: dict[str, str]) -> None:
    total = 0
    for key, value in env.items():
        size = len(key.encode(errors="surrogatepass")) + len(value.encode(errors="surrogatepass"))
        if size + 2 > ENV_STRING_MAX:
            raise BadRequest(f"field 'env.{key}' is longer than a process can take (128 KiB)")
        total += size + 2 + 8  # "=", the NUL, and the pointer to it
    if total > ENV_TOTAL_MAX:
        raise BadRequest(
            f"field 'env' holds {total} bytes: a process can be started with at most 1 MiB"
        )


class SandboxRoutes:
    def __init__(self, service: SandboxService, max_request_bytes: int) -> None:
        self.service = service
        self.limit = max_request_bytes

    def routes(self) -> list[Route]:
        return [
            Route("/sandbox", self.create, methods=["POST"]),
            Route("/sandbox", self.list, methods=["GET"]),
            Route("/sandbox/{ref}", self.get, methods=["GET"]),
            Route("/sandbox/{ref}", self.delete, methods=["DELETE"]),
            Route("/sandbox/{ref}/start", self.start, methods=["POST"]),
            Route("/sandbox/{ref}/stop", self.stop, methods=["POST"]),
            Route("/sandbox/{ref}/toolbox-proxy-url", self.proxy_url, methods=["GET"]),
            Route("/sandbox/{ref}/network-settings", self.update_network, methods=["POST"]),
            Route("/sandbox/{ref}/network-settings", self.get_network, methods=["GET"]),
            Route("/socket.io/{rest:path}", self.no_events, methods=["GET"]),
            Route("/nodes", self.nodes, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        req = CreateSandboxRequest.from_wire(await read_json(request, self.limit))
        # No process could be started with these: refuse the sandbox, not each command.
        for key, value in req.env.items():
            if "\0" in value:
                raise BadRequest(f"field 'env.{key}' contains a NUL byte")
        _check_env_fits_execve(req.env)
        for i, arg in enumerate(req.entrypoint or []):
            if "\0" in arg:
                raise BadRequest(f"field 'entrypoint[{i}]' contains a NUL byte")
        record = await self.service.create(owner(request), req)
        # Daytona answers 200 (its SDK ignores a 201 body); a failed start is
        # reported in the record's state and errorReason, as Daytona does.
        return JSONResponse(self._render(record, request))

    async def list(self, request: Request) -> Response:
        q = request.query_params
        wanted: dict[str, str] = {}
        if "labels" in q:
            try:
                wanted = json.loads(q["labels"], parse_constant=_no_constant)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                raise BadRequest("query 'labels' must be a JSON object") from None
            if not isinstance(wanted, dict) or not all(isinstance(v, str) for v in wanted.values()):
                raise BadRequest("query 'labels' must be a JSON object of strings")
        # Filtered through the store's label index: fast with many sandboxes.
        records = self.service.list(owner(request), wanted)
        if states := q.getlist("states"):
            records = [r for r in records if r.state in states]
        if name := q.get("name"):
            records = [r for r in records if r.name == name]
        items = [Sandbox.from_wire(self._render(r, request)) for r in records]
        return JSONResponse(SandboxList(items=items, total=len(items)).to_wire())

    async def get(self, request: Request) -> Response:
        return JSONResponse(
            self._render(self.service.get(owner(request), request.path_params["ref"]), request)
        )

    async def delete(self, request: Request) -> Response:
        record = await self.service.delete(owner(request), request.path_params["ref"])
        return JSONResponse(self._render(record, request))

    async def start(self, request: Request) -> Response:
        record = await self.service.start(owner(request), request.path_params["ref"])
        return JSONResponse(self._render(record, request))

    async def stop(self, request: Request) -> Response:
        record = await self.service.stop(owner(request), request.path_params["ref"])
        return JSONResponse(self._render(record, request))

    async def update_network(self, request: Request) -> Response:
        req = UpdateNetworkSettings.from_wire(await read_json(request, self.limit))
        record = await self.service.update_network(owner(request), request.path_params["ref"], req)
        return JSONResponse(self._render(record, request))

    async def get_network(self, request: Request) -> Response:
        """Cove: the effective policy, and whether this server enforces egress at all."""
        record = self.service.get(owner(request), request.path_params["ref"])
        note = self.service.network_note()
        settings = NetworkSettings(**vars(record.spec.network), egress=note is None)
        if note is not None:
            settings.network_block_all = True
            settings.note = f"sandboxes here have loopback only: {note}"
        return JSONResponse(settings.to_wire())

    def _render(self, r: SandboxRecord, request: Request) -> dict[str, Any]:
        return sandbox_json(self.service, r, request)

    async def proxy_url(self, request: Request) -> Response:
        self.service.get(owner(request), request.path_params["ref"])
        return JSONResponse({"url": toolbox_url(request)})

    async def nodes(self, request: Request) -> Response:
        """Hosts that run sandboxes (one for `local`; Ray's nodes for `ray`)."""
        return JSONResponse([render_node(n) for n in await self.service.nodes()])

    async def no_events(self, request: Request) -> Response:
        # The official SDK tries Socket.IO for state events; without it, it
        # polls. create() answers "started" already, so there is nothing to wait for.
        raise NotFound("this server has no event channel; clients fall back to polling")
