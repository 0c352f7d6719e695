"""The snapshots API in Daytona's shapes: `daytona.snapshot.*` and `sandbox.create_snapshot`.

    POST   /snapshots                   build a named image (buildInfo or imageName)
    GET    /snapshots                   a page of the caller's snapshots
    GET    /snapshots/{id or name}
    DELETE /snapshots/{id}
    POST   /snapshots/{id}/activate     (and /deactivate)
    GET    /snapshots/{id}/build-logs-url, /snapshots/{id}/build-logs?follow=true
    POST   /sandbox/{id or name}/snapshot   a sandbox's changes as a new snapshot

A snapshot is built like a sandbox's image (`BuildService`), then its name
is tagged in the image store, so `create(snapshot=NAME)` runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cove.images import dockerfile
from cove.images.step import Capturer
from cove.images.store import ImageConfig, ImageStore, content_key
from cove.server.api import read_json, sandbox_json
from cove.server.builds import BuildService
from cove.server.object_storage import ContextStore
from cove.server.records import SandboxState
from cove.server.sandboxes import SandboxService
from cove.server.snapshot_records import SnapshotRecord, SnapshotRepo
from cove.wire.errors import BadRequest, CoveError, SandboxError
from cove.wire.numbers import is_number

GiB = 1 << 30
# As for sandboxes: an image served whole from the cache answers `active` at
# once; one that needed work answers `building` however fast it was, so the
# SDK follows its log.
QUICK_BUILD = 0.5


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def render_snapshot(s: SnapshotRecord) -> dict[str, Any]:
    return {
        "id": s.id,
        "organizationId": "local",
        "general": False,
        "name": s.name,
        "imageName": s.image_name,
        "state": s.state,
        "size": None if s.size_bytes is None else round(s.size_bytes / GiB, 3),
        "entrypoint": s.entrypoint,
        "cpu": s.cpu,
        "gpu": 0,
        "mem": s.mem,
        "disk": s.disk,
        "errorReason": s.error_reason,
        "createdAt": _iso(s.created_at),
        "updatedAt": _iso(s.updated_at),
        "lastUsedAt": _iso(s.last_used_at),
        "ref": s.image_id,
        "sourceSandboxId": s.source_sandbox_id,
    }


def _unicode(value: Any, where: str = "body") -> Any:
    """`value` if every string in it is real Unicode text: JSON's \\ud800 escapes carry
    lone surrogates, which the store keeps but no answer can encode (a 500 after the
    snapshot was recorded). A 400 naming the field instead, before anything is kept."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field '{where}' holds a lone surrogate, not Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode(key, where)
            _unicode(item, key if where == "body" else f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _unicode(item, f"{where}[{i}]")
    return value


def _str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"field '{key}' must be a string")
    return value


class SnapshotRoutes:
    def __init__(
        self,
        repo: SnapshotRepo,
        store: ImageStore,
        builds: BuildService,
        service: SandboxService,
        limit: int,
        contexts: ContextStore,
    ) -> None:
        self.contexts = contexts
        self.repo = repo
        self.store = store
        self.builds = builds
        self.service = service
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        # Creates still waiting to answer -> whether their build did work (a
        # fact, not a timing: see `SandboxService._fresh_builds`).
        self._fresh: dict[str, bool] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/snapshots", self.create, methods=["POST"]),
            Route("/snapshots", self.list, methods=["GET"]),
            Route("/snapshots/{ref}", self.get, methods=["GET"]),
            Route("/snapshots/{ref}", self.delete, methods=["DELETE"]),
            Route("/snapshots/{ref}/activate", self.activate, methods=["POST"]),
            Route("/snapshots/{ref}/deactivate", self.deactivate, methods=["POST"]),
            Route("/snapshots/{ref}/build-logs-url", self.logs_url, methods=["GET"]),
            Route("/snapshots/{ref}/build-logs", self.logs, methods=["GET"]),
            Route("/sandbox/{ref}/snapshot", self.from_sandbox, methods=["POST"]),
        ]

    # -- create from an image definition ------------------------------------------

    async def create(self, request: Request) -> Response:
        body = _unicode(await read_json(request, self.limit))
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        name = _str(body, "name")
        if not name:
            raise BadRequest("field 'name' is required")
        image_name = _str(body, "imageName")
        entrypoint = body.get("entrypoint")
        if entrypoint is not None and not (
            isinstance(entrypoint, list) and all(isinstance(a, str) for a in entrypoint)
        ):
            raise BadRequest("field 'entrypoint' must be a list of strings")
        info = body.get("buildInfo")
        hashes: list[str] = []
        if isinstance(info, dict):
            text = info.get("dockerfileContent")
            if not isinstance(text, str):
                raise BadRequest("field 'buildInfo.dockerfileContent' must be a string")
            hashes = self.contexts.hashes(info.get("contextHashes"))  # a 400 without a store
        elif image_name:
            text = f"FROM {image_name}\n"
            if entrypoint:
                text += f"ENTRYPOINT {json.dumps(entrypoint)}\n"
        else:
            raise BadRequest("one of 'imageName' or 'buildInfo' is required")
        dockerfile.parse(text)  # a 400 now for what cannot be built
        owner = str(request.state.owner)
        await self.contexts.check(owner, hashes)  # a 400 for a hash this key did not upload
        record = SnapshotRecord(
            id=str(uuid.uuid4()),
            owner=owner,
            name=name,
            state="building",
            image_name=image_name,
            entrypoint=entrypoint,
            cpu=_int(body, "cpu", 1),
            mem=_int(body, "memory", 1),
            disk=_int(body, "disk", 3),
        )
        self.repo.insert(record)
        self._fresh[record.id] = False
        task = asyncio.create_task(self._build(record, text, hashes))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), QUICK_BUILD)
        finally:
            fresh = self._fresh.pop(record.id)
        answer = render_snapshot(record)
        if fresh:
            answer = {**answer, "state": "building"}
        return JSONResponse(answer)

    async def _build(self, record: SnapshotRecord, text: str, hashes: list[str]) -> None:
        fetch = self.contexts.fetcher(record.owner, hashes)
        job = self.builds.start(f"snapshot-{record.id}", text, fetch=fetch)
        assert job.task is not None
        try:
            image = await asyncio.shield(job.task)
        except CoveError as err:
            record.state, record.error_reason = "build_failed", err.message
        except Exception as exc:  # logged by the build service
            record.state, record.error_reason = "build_failed", f"the image build failed: {exc}"
        else:
            self.store.tag(record.name, image.id)
            record.image_id, record.size_bytes = image.id, image.size
            record.state = "active"
            if job.worked and record.id in self._fresh:  # `create` has yet to answer
                self._fresh[record.id] = True
        self.repo.save(record)

    # -- read, delete, (de)activate -------------------------------------------------

    async def list(self, request: Request) -> Response:
        owner = str(request.state.owner)
        q = request.query_params
        page = max(1, int(q.get("page") or 1)) if is_number(q.get("page") or "1") else 1
        limit = int(q["limit"]) if is_number(q.get("limit") or "") else 100
        limit = max(1, min(limit, 200))
        mine = [s for s in self.repo.all() if s.owner == owner]
        if q.get("sourceSandboxId"):
            mine = [s for s in mine if s.source_sandbox_id == q["sourceSandboxId"]]
        items = mine[(page - 1) * limit : page * limit]
        return JSONResponse(
            {
                "items": [render_snapshot(s) for s in items],
                "total": len(mine),
                "page": page,
                "totalPages": max(1, math.ceil(len(mine) / limit)),
            }
        )

    def _get(self, request: Request) -> SnapshotRecord:
        return self.repo.get(str(request.state.owner), request.path_params["ref"])

    async def get(self, request: Request) -> Response:
        return JSONResponse(render_snapshot(self._get(request)))

    async def delete(self, request: Request) -> Response:
        record = self._get(request)
        if self.store.resolve(record.name) == record.image_id:
            self.store.untag(record.name)
        self.repo.delete(record)
        self.builds.forget(f"snapshot-{record.id}")  # its build log goes with it
        record.state = "removing"
        return JSONResponse(render_snapshot(record))

    async def activate(self, request: Request) -> Response:
        return self._set_active(self._get(request), True)

    async def deactivate(self, request: Request) -> Response:
        return self._set_active(self._get(request), False)

    def _set_active(self, record: SnapshotRecord, active: bool) -> Response:
        if record.image_id is None:
            raise SandboxError(f"snapshot {record.name!r} is {record.state}, it has no image")
        record.state = "active" if active else "inactive"
        self.repo.save(record)
        return JSONResponse(render_snapshot(record))

    async def logs_url(self, request: Request) -> Response:
        record = self._get(request)
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"url": f"{base}/api/snapshots/{record.id}/build-logs"})

    async def logs(self, request: Request) -> Response:
        record = self._get(request)
        key = f"snapshot-{record.id}"
        self.builds.log_path(key)
        follow = request.query_params.get("follow", "false").lower() in ("1", "true")
        return StreamingResponse(
            self.builds.follow(key, follow), media_type="text/plain; charset=utf-8"
        )

    # -- a sandbox's changes --------------------------------------------------------

    async def from_sandbox(self, request: Request) -> Response:
        owner = str(request.state.owner)
        body = _unicode(await read_json(request, self.limit))
        name = _str(body, "name") if isinstance(body, dict) else None
        if not name:
            raise BadRequest("field 'name' is required")
        r = self.service.get(owner, request.path_params["ref"])
        backend = self.service.backend
        if not isinstance(backend, Capturer):
            raise BadRequest(f"create_snapshot: the {backend.name} backend cannot capture")
        # On the default root, what a sandbox can change is its workspace (the
        # host's /usr is read-only to it): the snapshot is that workspace, and
        # its sandboxes run on the default root as their source did.
        base = self.store.get(r.spec.image_id) if r.spec.image_id else None
        record = SnapshotRecord(
            id=str(uuid.uuid4()),
            owner=owner,
            name=name,
            state="snapshotting",
            source_sandbox_id=r.id,
            cpu=r.spec.cpu,
            mem=r.spec.memory,
            disk=r.spec.disk,
            entrypoint=r.spec.entrypoint,
        )
        self.repo.insert(record)
        scratch = self.store.scratch("capture")
        tree = scratch / "tree"
        try:
            handle = self.service.handle(r)
            await backend.capture_changes(handle, tree)
            key = content_key("capture", r.id, record.id)
            self.store.commit_layer(key, tree)
            source = f"sandbox:{r.id}"
            if base is None:
                image = self.store.put([key], ImageConfig(), source, host_root=True)
            else:
                image = self.store.put([*base.layers, key], base.config, source, base.host_root)
        except BaseException as exc:
            self.repo.delete(record)
            if isinstance(exc, Exception) and not isinstance(exc, CoveError):
                raise SandboxError(f"capturing sandbox {r.id} failed: {exc}") from exc
            raise
        finally:
            with contextlib.suppress(OSError):
                scratch.rmdir()
        self.store.tag(name, image.id)
        record.image_id, record.size_bytes, record.state = image.id, image.size, "active"
        self.repo.save(record)
        r = self.service.get(owner, r.id)
        assert r.state != SandboxState.DESTROYED
        return JSONResponse(sandbox_json(self.service, r, request))


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"field '{key}' must be a non-negative number")
    return int(value)
