"""`GET /metrics`: the control plane's own figures in Prometheus' text format.

What a self-hoster scrapes: sandboxes by state (counted in the store at
scrape time), the warm pool's ready sandboxes (local backend), sandboxes
created and sandboxes that failed (counters fed by the lifecycle's state
changes), HTTP requests by route template and status
class with their latency, and error responses. Route labels are templates
(`/api/sandbox/{ref}`), never raw paths, so a label's values stay few.
Each server has its own registry (tests build several in one process).
Behind the API key like every route but /health: Prometheus sends one with
`authorization: {credentials: KEY}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cove.server.records import SandboxRecord, SandboxState
from cove.server.store import Store

# First segments of toolbox paths worth their own label; others are "other".
TOOLBOX_AREAS = frozenset(
    {"process", "files", "git", "system", "version", "work-dir", "user-home-dir", "lsp", "port"}
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _SandboxStates(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cove_sandboxes", "Sandboxes in the store, by state", labels=["state"]
        )
        counts = self.store.count_by_state()
        for state in SandboxState:
            if state != SandboxState.DESTROYED:
                family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class _WarmPool(Collector):
    def __init__(self, ready: Callable[[], int | None]) -> None:
        self.ready = ready

    def collect(self) -> Iterator[Metric]:
        count = self.ready()
        if count is not None:  # no pool on this backend: no gauge
            yield GaugeMetricFamily(
                "cove_warm_pool_ready", "Pre-started sandboxes waiting for a create", count
            )


class PrometheusMetrics:
    def __init__(self, store: Store, pool_ready: Callable[[], int | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_SandboxStates(store))
        self.registry.register(_WarmPool(pool_ready))
        self.creates = Counter("cove_sandbox_creates", "Sandboxes created", registry=self.registry)
        self.failures = Counter(
            "cove_sandbox_errors", "Sandboxes that entered state error", registry=self.registry
        )
        self.requests = Histogram(
            "cove_http_request_duration_seconds",
            "HTTP request latency until the response head, by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "cove_http_errors",
            "HTTP responses with a 4xx or 5xx status",
            ["route", "status"],
            registry=self.registry,
        )

    def on_state(self, r: SandboxRecord) -> None:
        if r.state == SandboxState.CREATING:
            self.creates.inc()
        elif r.state == SandboxState.ERROR:
            self.failures.inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        status_class = f"{status // 100}xx"
        self.requests.labels(method, route, status_class).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    async def endpoint(self, _: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The matched route's template (mount prefix included); "unmatched" if none."""
    route: BaseRoute | None = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or path is None:
        return "unmatched"
    prefix = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    if prefix == "/toolbox":
        rest = str(scope.get("path_params", {}).get("rest", ""))
        area = rest.split("/", 1)[0]
        return f"/toolbox/{{sid}}/{area if area in TOOLBOX_AREAS else 'other'}"
    return prefix + str(path)


class RequestMetrics:
    """ASGI middleware: times each HTTP request to its response head."""

    def __init__(self, app: ASGIApp, metrics: PrometheusMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_time(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.metrics.observe(
                    scope["method"], route_template(scope), status, time.perf_counter() - started
                )
                started = 0.0
            await send(message)

        try:
            await self.app(scope, receive, send_and_time)
        finally:
            if started:  # no response head was sent (the handler raised through)
                self.metrics.observe(
                    scope["method"], route_template(scope), status, time.perf_counter() - started
                )
