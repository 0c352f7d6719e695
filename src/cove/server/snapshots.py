"""Sandboxes on named images: the create request's `snapshot` resolved in the image store.

A snapshot name is a tag in the store (made by a build, a pull or
`create_snapshot`); the sandbox runs on that image's root filesystem and
starts as its config says (ENV under the request's env, WORKDIR,
ENTRYPOINT + CMD unless the request brings its own entrypoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cove.images import dockerfile
from cove.images.bases import ImageUnavailable
from cove.images.store import Image, ImageStore
from cove.server.builds import BuildService
from cove.server.images import fold_start_config
from cove.server.object_storage import ContextStore
from cove.server.records import RecordSpec, SandboxRecord
from cove.server.sandboxes import SandboxService
from cove.wire.errors import NotFound
from cove.wire.protocol import CreateSandboxRequest


class SnapshotSpecs:
    """Spec hook: a create's `snapshot` → the image its sandbox runs on."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def __call__(self, spec: RecordSpec, req: CreateSandboxRequest) -> None:
        if not req.snapshot:
            return
        image_id = self.store.resolve(req.snapshot)
        if image_id is None:
            names = sorted(self.store.tags())
            have = ", ".join(names) if names else "none yet"
            raise NotFound(f"snapshot {req.snapshot!r} does not exist (snapshots here: {have})")
        apply_image(spec, self.store.get(image_id))
        spec.image = req.snapshot


def apply_image(spec: RecordSpec, image: Image) -> None:
    """Run the sandbox on `image`, started as its config says where the request did not."""
    config = image.config
    spec.image_id = image.id
    spec.env = {**config.env, **spec.env}
    if config.workdir and not spec.workdir:
        spec.workdir = config.workdir
    if spec.entrypoint is None and config.command():
        spec.entrypoint = config.command()


class SandboxImages:
    """`ImageBuilds` for the sandbox service: a create's Dockerfile built, its log kept.

    With `fallback` (COVE_IMAGE_FALLBACK=default), an image that cannot be had
    and has no build steps runs on the default root instead, with a warning
    in the build log.
    """

    def __init__(self, builds: BuildService, fallback: bool, contexts: ContextStore) -> None:
        self.builds = builds
        self.fallback = fallback
        self.contexts = contexts

    async def build_for(self, r: SandboxRecord, building: Callable[[], None]) -> bool:
        text = r.spec.dockerfile or ""
        fetch = self.contexts.fetcher(r.owner, r.spec.context_hashes)
        job = self.builds.start(r.id, text, fetch=fetch)
        building()
        assert job.task is not None
        try:
            image = await asyncio.shield(job.task)
        except ImageUnavailable as err:
            if not self.fallback or _has_build_steps(text):
                raise
            job.write(f"WARNING: {err.message}; running on the default image instead")
            r.spec.dockerfile = None
            fold_start_config(r.spec, text)
            return True  # the warning is worth following
        apply_image(r.spec, image)
        return job.worked


def _has_build_steps(text: str) -> bool:
    parsed = dockerfile.parse(text)
    return any(i.kind in ("RUN", "COPY", "ADD") for st in parsed.stages for i in st.steps)


class BuildLogRoutes:
    """A sandbox's image build log: the URL the official SDK asks for, and the log itself."""

    def __init__(self, service: SandboxService, builds: BuildService) -> None:
        self.service = service
        self.builds = builds

    def routes(self) -> list[Route]:
        return [
            Route("/sandbox/{ref}/build-logs-url", self.logs_url, methods=["GET"]),
            Route("/sandbox/{ref}/build-logs", self.logs, methods=["GET"]),
        ]

    async def logs_url(self, request: Request) -> Response:
        r = self.service.get(str(request.state.owner), request.path_params["ref"])
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"url": f"{base}/api/sandbox/{r.id}/build-logs"})

    async def logs(self, request: Request) -> Response:
        r = self.service.get(str(request.state.owner), request.path_params["ref"])
        self.builds.log_path(r.id)  # a 404 now rather than an empty stream
        follow = request.query_params.get("follow", "false").lower() in ("1", "true")
        return StreamingResponse(
            self.builds.follow(r.id, follow), media_type="text/plain; charset=utf-8"
        )
