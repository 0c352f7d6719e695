"""Cove's own image endpoints (beyond Daytona): list, prune, and build with a context.

    GET  /images                        the store: id, tags, size, last used, in use
    POST /images/prune[?all=true]       least recently used first, down to the cache size
    POST /images/build?tag=&dockerfile= the body is a tar of the build context; the
                                        answer streams NDJSON: {"log": line}... then
                                        {"image": {...}} or {"error": {...}}

The context goes straight to the server (no object store), is unpacked by
`images.context` (no absolute paths, no links out of the tree, no devices,
bounded) and is bound read-only into the build sandboxes that COPY from it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cove.images import dockerfile
from cove.images.context import CONTEXT_LIMIT, unpack_context
from cove.images.store import ImageStore, prune
from cove.server.builds import BuildService
from cove.wire.errors import BadRequest, CoveError, PayloadTooLarge


def _iso(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class ImageRoutes:
    def __init__(
        self,
        store: ImageStore,
        builds: BuildService,
        in_use: Callable[[], set[str]],
        cache_bytes: int,
    ) -> None:
        self.store = store
        self.builds = builds
        self.in_use = in_use
        self.cache_bytes = cache_bytes

    def routes(self) -> list[Route]:
        return [
            Route("/images", self.list, methods=["GET"]),
            Route("/images/prune", self.prune, methods=["POST"]),
            Route("/images/build", self.build, methods=["POST"]),
        ]

    async def list(self, request: Request) -> Response:
        tags: dict[str, list[str]] = {}
        for name, image_id in self.store.tags().items():
            if not name.startswith("pulled:"):
                tags.setdefault(image_id, []).append(name)
        used = self.in_use()
        items = [
            {
                "id": image.id,
                "tags": sorted(tags.get(image.id, [])),
                "size": image.size,
                "layers": len(image.layers),
                "createdAt": _iso(image.created_at),
                "lastUsedAt": _iso(self.store.last_used(image.id)),
                "inUse": image.id in used,
                "source": image.source,
            }
            for image in self.store.images()
        ]
        return JSONResponse({"items": items, "cacheBytes": self.cache_bytes})

    async def prune(self, request: Request) -> Response:
        everything = request.query_params.get("all", "false").lower() in ("1", "true")
        result = await asyncio.to_thread(
            prune, self.store, self.cache_bytes, self.in_use(), everything
        )
        return JSONResponse(
            {
                "removedImages": result.removed_images,
                "removedLayers": len(result.removed_layers),
                "freedBytes": result.freed_bytes,
            }
        )

    async def build(self, request: Request) -> Response:
        tag = request.query_params.get("tag") or None
        name = request.query_params.get("dockerfile") or "Dockerfile"
        work = self.store.scratch("context")
        try:
            context = work / "context"
            await _receive_context(request, work / "context.tar", context)
            path = (context / name).resolve()
            if not path.is_relative_to(context.resolve()) or not path.is_file():
                raise BadRequest(f"the build context has no Dockerfile at {name!r}")
            text = path.read_text(errors="replace")
            dockerfile.parse(text)  # a 400 before the stream starts
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        job = self.builds.start(f"build-{uuid.uuid4()}", text, context=context)
        return StreamingResponse(
            self._stream(job.key, tag, work), media_type="application/x-ndjson"
        )

    async def _stream(self, key: str, tag: str | None, work: Path) -> AsyncIterator[bytes]:
        job = self.builds.jobs[key]
        try:
            pending = b""
            async for chunk in self.builds.follow(key, True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield _line({"log": line.decode(errors="replace")})
            assert job.task is not None
            try:
                image = await job.task
            except CoveError as err:
                yield _line({"error": {"message": err.message, "status": err.status}})
                return
            if tag:
                self.store.tag(tag, image.id)
            yield _line({"image": {"id": image.id, "tag": tag, "size": image.size}})
        finally:
            # Only this stream reads a `cove build` log: it goes when the stream ends.
            self.builds.forget(key)
            await asyncio.to_thread(shutil.rmtree, work, True)


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode() + b"\n"


async def _receive_context(request: Request, tar_path: Path, dest: Path) -> None:
    size = 0
    with open(tar_path, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > CONTEXT_LIMIT:
                raise PayloadTooLarge(f"the build context exceeds {CONTEXT_LIMIT} bytes")
            f.write(chunk)
    dest.mkdir()
    if size == 0:
        return
    await asyncio.to_thread(unpack_context, [tar_path], dest)
    tar_path.unlink()
