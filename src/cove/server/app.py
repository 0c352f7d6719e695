"""The control-plane application, built from explicit parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from cove.images.builder import Builder
from cove.images.pull import Puller, RegistrySettings
from cove.images.step import StepRunner, disk_bound
from cove.images.store import ImageStore, prune
from cove.runtime import make_backend
from cove.server.api import SandboxRoutes
from cove.server.auth import AuthMiddleware, KeyRing, load_or_generate_key
from cove.server.builds import BuildService
from cove.server.control import ControlRoutes
from cove.server.dashboard.routes import STATIC_PREFIX, DashboardRoutes
from cove.server.dashboard.sessions import SessionBook
from cove.server.errors import error_response, handle_cove_error, handle_unexpected
from cove.server.image_api import ImageRoutes
from cove.server.images import BuildInfoSpecs
from cove.server.memory import IdleTrim
from cove.server.metrics import MetricsHistory, MetricsSampler
from cove.server.object_storage import ContextStore
from cove.server.openapi import openapi_endpoint
from cove.server.preview.access import PreviewAccess, load_or_generate_secret
from cove.server.preview.front import PreviewFront, Previews
from cove.server.preview.routes import PreviewRoutes
from cove.server.prometheus import PrometheusMetrics, RequestMetrics
from cove.server.quotas import Admission, Quotas
from cove.server.sandboxes import SandboxService
from cove.server.snapshot_api import SnapshotRoutes
from cove.server.snapshot_records import SnapshotRepo
from cove.server.snapshots import BuildLogRoutes, SandboxImages, SnapshotSpecs
from cove.server.ssh import SshServer
from cove.server.sshaccess import SshAccessService
from cove.server.sshapi import SshAccessRoutes
from cove.server.store import Store
from cove.server.sweeper import LifecycleSweeper
from cove.server.toolbox import ToolboxProxy
from cove.server.wsfront import uvicorn_ws_protocol
from cove.settings import Settings
from cove.wire.errors import BadRequest, CoveError, NotFound

log = logging.getLogger("cove.server")
EXECUTOR_THREADS = 64  # short blocking calls (files, cgroups, nft) beside a few long ones
# How long an idle client connection is kept (uvicorn's default is 5 s). Closing
# one races the client's next request on it: the request is reset, and the
# official SDK retries no POST. SDK users pause for seconds between calls (an
# agent thinking), so the close comes long after, as behind nginx's 75 s.
KEEP_ALIVE_SECONDS = 75


@dataclass
class Server:
    """Everything a running control plane holds (also what tests reach into)."""

    settings: Settings
    store: Store
    service: SandboxService
    proxy: ToolboxProxy
    api_keys: list[str]
    generated_key: bool
    keys: KeyRing
    sampler: MetricsSampler
    prometheus: PrometheusMetrics
    previews: Previews
    ssh_access: SshAccessService
    sessions: SessionBook  # the dashboard's signed-in browsers
    # The official SDK's build contexts (an S3-compatible store, when configured).
    contexts: ContextStore
    ssh: SshServer | None = None  # with `ssh_port` set
    builds: BuildService | None = None  # image builds, when the backend can run them

    def uvicorn_ws(self) -> type[asyncio.Protocol]:
        """uvicorn's `ws=`: toolbox and preview WebSockets relayed as bytes (see `wsfront`)."""
        return uvicorn_ws_protocol(self.keys, self.service, self.previews, self.sessions)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    err: CoveError
    if exc.status_code == 404:
        err = NotFound(f"no such endpoint: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        err = BadRequest(f"method {request.method} is not allowed on {request.url.path}")
    else:
        err = CoveError(str(exc.detail))
        err.status = exc.status_code  # type: ignore[misc]
    return error_response(err, request.url.path)


def build_server(settings: Settings) -> Server:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.data_dir / "cove.db")
    keys = list(settings.api_keys)
    generated = False
    if not keys:
        key, generated = load_or_generate_key(settings.data_dir)
        keys = [key]
    backend = make_backend(settings)
    service = SandboxService(store, backend, settings)
    admission, quotas = Admission(settings, backend.host_room), Quotas(store, settings)
    service.admit_hooks.append(lambda owner, spec, r: admission.check(spec))
    service.admit_hooks.append(quotas.check)
    images = ImageStore(settings.image_dir or settings.data_dir / "images")
    contexts = ContextStore(settings)
    service.create_checks.append(lambda owner, spec: contexts.check(owner, spec.context_hashes))
    builds = None
    if isinstance(backend, StepRunner):  # the backend can run build steps: images build
        auth = str(settings.registry_auth_file) if settings.registry_auth_file else None
        puller = Puller(images, RegistrySettings(settings.image_registry, auth))
        builder = Builder(
            images,
            backend,
            settings.image_base_cache,
            puller,
            settings.build_step_timeout,
            disk_bound(settings.build_disk_gib),
        )

        def in_use() -> set[str]:
            return {r.spec.image_id for r in store.list() if r.spec.image_id}

        def evict() -> None:
            prune(images, settings.image_cache_bytes, in_use(), everything=False)

        builds = BuildService(builder, settings.data_dir / "build-logs", evict)
        builds.in_use = in_use
        service.on_delete.append(builds.forget)  # a sandbox's build log goes with it
        service.image_builds = SandboxImages(builds, settings.image_fallback == "default", contexts)
    # SDK `Image` definitions (`buildInfo`), then `snapshot`: a named image's root.
    service.spec_hooks.append(BuildInfoSpecs(builds is not None, contexts))
    service.spec_hooks.append(SnapshotSpecs(images))
    proxy = ToolboxProxy(service, settings.max_request_bytes)
    history = MetricsHistory(settings.data_dir / "metrics", settings.metrics_keep)
    sampler = MetricsSampler(service, history, settings.metrics_interval)
    prometheus = PrometheusMetrics(store, backend.warm_pool_ready)
    service.on_state.append(prometheus.on_state)
    access = PreviewAccess(store, load_or_generate_secret(settings.data_dir))
    previews = Previews(service, access, settings.preview_domain)
    ssh_access = SshAccessService(service)
    ssh = None
    if settings.ssh_port:
        ssh = SshServer(
            ssh_access, service, proxy.clients, settings.host, settings.ssh_port, settings.data_dir
        )
    ring = KeyRing(store, keys)
    return Server(
        settings, store, service, proxy, keys, generated, ring, sampler,
        prometheus, previews, ssh_access, SessionBook(ring), contexts, ssh, builds=builds,
    )  # fmt: skip


def _mcp_endpoint(settings: Settings) -> Any:
    """MCP at /mcp when the `mcp` extra is installed (`cove[mcp]`); else none."""
    try:
        from cove.mcp.http import McpEndpoint
    except ImportError:
        log.info("no MCP endpoint: the mcp package is not installed (pip install 'cove[mcp]')")
        return None
    return McpEndpoint(settings)


def build_app(server: Server) -> Starlette:
    mcp = _mcp_endpoint(server.settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp.running())
            async with _lifespan():
                yield

    @contextlib.asynccontextmanager
    async def _lifespan() -> AsyncIterator[None]:
        # The default executor has cpu count + 4 threads: a few long calls (a base
        # image's mmdebstrap, an unpack) would queue every short one behind them.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="cove")
        )
        await server.service.startup()
        sweeper = LifecycleSweeper(server.service, minute=server.settings.lifecycle_minute)
        sweeper.start()
        server.sampler.start()
        if server.ssh is not None:
            await server.ssh.start()
        try:
            yield
        finally:
            if server.ssh is not None:
                await server.ssh.stop()
            await server.sampler.stop()
            await sweeper.stop()
            await server.service.shutdown()
            await server.proxy.clients.close()
            server.previews.pool.close()

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    limit = server.settings.max_request_bytes
    control = ControlRoutes(server.service, server.sampler, limit)
    dashboard = DashboardRoutes(server.sessions)
    contexts = server.contexts
    image_routes: list[Route] = [*contexts.routes()]
    if server.builds is not None:
        repo = SnapshotRepo(server.settings.data_dir / "snapshots")
        store = server.builds.builder.store
        image_routes += BuildLogRoutes(server.service, server.builds).routes()
        image_routes += SnapshotRoutes(
            repo, store, server.builds, server.service, limit, contexts
        ).routes()
        image_routes += ImageRoutes(
            store, server.builds, server.builds.in_use, server.settings.image_cache_bytes
        ).routes()
    routes = [
        *dashboard.routes(),
        Route("/health", health),
        Route("/metrics", server.prometheus.endpoint),
        Route("/api/openapi.json", openapi_endpoint),  # before the /api mount
        Mount(
            "/api",
            routes=[
                *SshAccessRoutes(server.ssh_access).routes(),
                *SandboxRoutes(server.service, limit).routes(),
                *control.routes(),
                *image_routes,
                *PreviewRoutes(
                    server.service, server.previews.access, server.previews.domain
                ).routes(),
            ],
        ),
        Mount("/toolbox", routes=[*control.toolbox_routes(), *server.proxy.routes()]),
        *([mcp.route()] if mcp is not None else []),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            CoveError: handle_cove_error,
            HTTPException: _http_exception,
            Exception: handle_unexpected,
        },
    )
    app.add_middleware(IdleTrim)
    app.add_middleware(
        AuthMiddleware,
        keys=server.keys,
        open_paths=("/health", *dashboard.open_paths()),
        open_prefixes=(STATIC_PREFIX,),
        sessions=server.sessions,
    )
    app.add_middleware(RequestMetrics, metrics=server.prometheus)
    app.add_middleware(PreviewFront, previews=server.previews)  # outermost: its own credential
    return app
