"""Sandbox control routes: labels, lifecycle intervals, TTL, activity, resize, metrics.

Daytona's paths under /api (wire shapes in `cove.wire.protocol.control`),
plus the toolbox's `/system/metrics`, answered here from the host's view of
the sandbox (its cgroups and workspace) rather than by the agent: the
control plane holds the cgroup paths, and a reading costs no hop into the
sandbox.

Intervals are minutes. 0 disables, as in Daytona; a negative value is a
400, except for auto-delete, where the official SDK documents a negative
value (-1) as "disabled" and Daytona stores it: it is accepted and stored
as -1.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cove.server.api import read_json, sandbox_json, toolbox_url
from cove.server.metrics import MetricsSampler, iso, parse_iso
from cove.server.records import SandboxRecord, SandboxState
from cove.server.sandboxes import SandboxService
from cove.settings import GiB
from cove.wire.errors import BadRequest, Conflict, NotFound, SandboxError
from cove.wire.protocol import (
    LANGUAGE_LABEL,
    METRIC_FIELDS,
    MetricDataPoint,
    MetricSeries,
    MetricsResponse,
    ResizeSandbox,
    SandboxLabels,
)

MAX_LABELS = 100
MAX_LABEL_KEY = 255
MAX_LABEL_VALUE = 1024
MAX_MINUTES = 2**31 - 1
SIZE_BOUNDS = {"cpu": (1, 64), "memory": (1, 256), "disk": (1, 1024)}  # as at create

INTERVALS = {  # path word -> (spec field, negative allowed)
    "autostop": ("auto_stop_interval", False),
    "autodelete": ("auto_delete_interval", True),
    "autoarchive": ("auto_archive_interval", False),
    "autopause": ("auto_pause_interval", False),
}


def _owner(request: Request) -> str:
    return str(request.state.owner)


def minutes(raw: str, what: str, negative_ok: bool = False) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{what} must be a whole number of minutes, got {raw!r}") from None
    if value < 0 and not negative_ok:
        raise BadRequest(f"{what} must be 0 (disabled) or a positive number of minutes")
    if value > MAX_MINUTES:
        raise BadRequest(f"{what} must be at most {MAX_MINUTES} minutes")
    return max(value, -1)


def check_labels(labels: dict[str, str], language: str) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise BadRequest(f"field 'labels' holds {len(labels)} labels; at most {MAX_LABELS}")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY or "\0" in key:
            raise BadRequest(f"field 'labels' has an invalid key {key[:40]!r} (1-255 characters)")
        if len(value) > MAX_LABEL_VALUE or "\0" in value:
            raise BadRequest(f"field 'labels.{key}' must be at most 1024 characters, no NUL")
    # The language a sandbox was made for is fixed: its label stays, unchanged.
    given = labels.get(LANGUAGE_LABEL, language)
    if given != language:
        raise BadRequest(
            f"label '{LANGUAGE_LABEL}' is {language!r} for this sandbox and cannot change"
        )
    return {**labels, LANGUAGE_LABEL: language}


def _time_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        # A '+' of a UTC offset arrives as ' ' when the client did not escape it.
        return parse_iso(raw.replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"query '{name}' must be an ISO 8601 time, got {raw!r}") from None


class ControlRoutes:
    def __init__(self, service: SandboxService, sampler: MetricsSampler, limit: int) -> None:
        self.service = service
        self.sampler = sampler
        self.limit = limit

    def _render(self, r: SandboxRecord, request: Request) -> dict[str, Any]:
        return sandbox_json(self.service, r, request)

    def routes(self) -> list[Route]:
        """Mounted under /api."""
        ref = "/sandbox/{ref}"
        return [
            Route(f"{ref}/labels", self.set_labels, methods=["PUT"]),
            *(
                Route(f"{ref}/{kind}/{{interval}}", self._interval_setter(kind), methods=["POST"])
                for kind in INTERVALS
            ),
            Route(f"{ref}/ttl/{{minutes}}", self.set_ttl, methods=["POST"]),
            Route(f"{ref}/last-activity", self.refresh_activity, methods=["POST"]),
            Route(f"{ref}/resize", self.resize, methods=["POST"]),
            Route(f"{ref}/telemetry/metrics", self.metrics_history, methods=["GET"]),
            Route("/config", self.config, methods=["GET"]),
        ]

    def toolbox_routes(self) -> list[Route]:
        """Mounted under /toolbox, before the proxy's catch-all."""
        return [Route("/{sid}/system/metrics", self.system_metrics, methods=["GET"])]

    # -- spec changes ---------------------------------------------------------------

    async def _update(self, request: Request, change: Any) -> SandboxRecord:
        """`change(record)` on the spec under the sandbox's lock; stored; the sweeper woken."""
        r = self.service.get(_owner(request), request.path_params["ref"])
        async with self.service.lock(r.id):
            r = self.service.get(_owner(request), r.id)
            change(r)
            self.service.store.save_spec(r)
        self.service.changed()
        return r

    async def set_labels(self, request: Request) -> Response:
        r = self.service.get(_owner(request), request.path_params["ref"])  # 404 first
        body = SandboxLabels.from_wire(await read_json(request, self.limit))
        labels = check_labels(body.labels, r.spec.language)

        def change(r: SandboxRecord) -> None:
            r.spec.labels = labels

        r = await self._update(request, change)
        return JSONResponse(SandboxLabels(labels=r.spec.labels).to_wire())

    def _interval_setter(self, kind: str) -> Callable[[Request], Awaitable[Response]]:
        field, negative_ok = INTERVALS[kind]

        async def set_interval(request: Request) -> Response:
            value = minutes(request.path_params["interval"], f"{kind} interval", negative_ok)

            def change(r: SandboxRecord) -> None:
                setattr(r.spec, field, value)

            return JSONResponse(self._render(await self._update(request, change), request))

        return set_interval

    async def set_ttl(self, request: Request) -> Response:
        ttl = minutes(request.path_params["minutes"], "TTL")
        # Counted from now in wall-clock minutes (the lifecycle's minute, shortened by tests).
        deadline = time.time() + ttl * self.service.settings.lifecycle_minute if ttl else None

        def change(r: SandboxRecord) -> None:
            r.spec.destroy_at = deadline

        return JSONResponse(self._render(await self._update(request, change), request))

    async def refresh_activity(self, request: Request) -> Response:
        r = self.service.get(_owner(request), request.path_params["ref"])
        self.service.note_activity(r.id)
        # Stored at once (toolbox activity is batched): the record shows it.
        self.service.store.touch(r.id, time.time())
        self.service.changed()
        return Response(status_code=201)

    # -- resize -----------------------------------------------------------------------

    async def resize(self, request: Request) -> Response:
        owner = _owner(request)
        r = self.service.get(owner, request.path_params["ref"])  # 404 first
        req = ResizeSandbox.from_wire(await read_json(request, self.limit))
        asked = {"cpu": req.cpu, "memory": req.memory, "disk": req.disk}
        if all(v is None for v in asked.values()):
            raise BadRequest("give at least one of 'cpu', 'memory', 'disk'")
        for name, value in asked.items():
            low, high = SIZE_BOUNDS[name]
            if value is not None and not low <= value <= high:
                raise BadRequest(f"field '{name}' must be between {low} and {high}, got {value}")
        async with self.service.lock(r.id):
            r = self.service.get(owner, r.id)
            sp = r.spec
            cpu = req.cpu if req.cpu is not None else sp.cpu
            memory = req.memory if req.memory is not None else sp.memory
            disk = req.disk if req.disk is not None else sp.disk
            if disk < sp.disk:
                raise BadRequest(f"field 'disk' can only grow: the sandbox has {sp.disk} GiB")
            if cpu > sp.cpu or memory > sp.memory or disk > sp.disk:
                grown = dataclasses.replace(sp, cpu=cpu, memory=memory, disk=disk)
                self.service.admit(owner, grown, r)
            if r.state == SandboxState.STARTED:
                if disk != sp.disk:
                    raise Conflict("the disk of a running sandbox cannot change; stop it first")
                await self.service.backend.resize(self.service.handle(r), cpu, memory * GiB)
            elif r.state not in (SandboxState.STOPPED, SandboxState.ERROR):
                raise Conflict(f"sandbox {r.id} is {r.state}; resize it once that is done")
            # A stopped sandbox gets the new sizes at its next start.
            sp.cpu, sp.memory, sp.disk = cpu, memory, disk
            self.service.store.save_spec(r)
        return JSONResponse(self._render(r, request))

    # -- metrics ------------------------------------------------------------------------

    async def metrics_history(self, request: Request) -> Response:
        r = self.service.get(_owner(request), request.path_params["ref"])
        start = _time_param(request, "from", r.created_at)
        end = _time_param(request, "to", time.time())
        # from > to is an empty range, not an error: the official SDK sends one
        # when asked for samples up to a time before the sandbox was created.
        names = request.query_params.getlist("metricNames") or list(METRIC_FIELDS)
        unknown = [n for n in names if n not in METRIC_FIELDS]
        if unknown:
            raise BadRequest(
                f"query 'metricNames' has unknown names {unknown}; known: {list(METRIC_FIELDS)}"
            )
        samples = self.sampler.history.read(r.id, start, end)
        series = [
            MetricSeries(
                metric_name=name,
                data_points=[
                    MetricDataPoint(s.timestamp, float(getattr(s, METRIC_FIELDS[name])))
                    for s in samples
                ],
            )
            for name in names
        ]
        return JSONResponse(MetricsResponse(series=series).to_wire())

    async def system_metrics(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        r = self.service.store.get(_owner(request), sid)
        if r is None or r.id != sid:
            raise NotFound(f"sandbox {sid!r} not found")
        reading = await self.sampler.reading(r) if r.state == SandboxState.STARTED else None
        if reading is None:
            raise SandboxError(f"sandbox {sid} is {r.state}", body={"state": r.state.value})
        return JSONResponse(reading.to_wire())

    # -- configuration ------------------------------------------------------------------

    async def config(self, request: Request) -> Response:
        """What the official SDK reads from `/config`: no analytics API, so metrics
        history comes from this server's telemetry route."""
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "version": "cove",
                "oidc": {"issuer": "", "clientId": "", "audience": "", "provider": "none"},
                "linkedAccountsEnabled": False,
                "announcements": {},
                "proxyTemplateUrl": base,
                "proxyToolboxUrl": toolbox_url(request),
                "defaultSnapshot": "",
                "dashboardUrl": base,
                "maxAutoArchiveInterval": 0,
                "maintananceMode": False,
                "environment": "self-hosted",
                "analyticsApiUrl": None,
                "createdAt": iso(time.time()),
            }
        )
