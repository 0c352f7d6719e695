"""Sandbox control in the Cove SDK: labels, lifecycle intervals, TTL, activity,
resize and metrics, with the official SDK's method names.

`ControlCalls` builds the requests once; `SyncControl` and `AsyncControl`
are the two faces, mixed into `Sandbox` and `AsyncSandbox` (which give them
`_t`, `_calls`, `_toolbox`, `id` and `_apply`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cove.sdk._base import Call, Endpoints, Toolbox, seg, wire_body
from cove.wire.errors import BadRequest
from cove.wire.protocol import (
    METRIC_FIELDS,
    MetricsResponse,
    ResizeSandbox,
    SandboxLabels,
    SystemMetrics,
)
from cove.wire.protocol import Sandbox as WireSandbox

if TYPE_CHECKING:
    from cove.sdk._transport import AsyncTransport, SyncTransport


@dataclass
class SandboxMetrics:
    """One sample of a sandbox's use (the official SDK's `SandboxMetrics` fields).

    CPU as a % of the sandbox's CPU limit; memory and disk in bytes.
    """

    cpu_count: int
    cpu_used_pct: float
    disk_total: int
    disk_used: int
    mem_total: int
    mem_used: int
    mem_cache: int
    timestamp: datetime


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _from_reading(data: Any) -> SandboxMetrics:
    m = SystemMetrics.from_wire(data, "metrics")
    return SandboxMetrics(
        m.cpu_count, m.cpu_used_pct, m.disk_total, m.disk_used,
        m.mem_total, m.mem_used, m.mem_cache, _when(m.timestamp),
    )  # fmt: skip


def _from_series(data: Any) -> list[SandboxMetrics]:
    """The per-metric series pivoted into one sample per timestamp, oldest first."""
    buckets: dict[str, dict[str, float]] = {}
    for series in MetricsResponse.from_wire(data, "metrics").series:
        field = METRIC_FIELDS.get(series.metric_name)
        if field is None:
            continue
        for point in series.data_points:
            buckets.setdefault(point.timestamp, {})[field] = point.value
    return [
        SandboxMetrics(
            cpu_count=int(v.get("cpu_count", 0)),
            cpu_used_pct=float(v.get("cpu_used_pct", 0.0)),
            disk_total=int(v.get("disk_total", 0)),
            disk_used=int(v.get("disk_used", 0)),
            mem_total=int(v.get("mem_total", 0)),
            mem_used=int(v.get("mem_used", 0)),
            mem_cache=int(v.get("mem_cache", 0)),
            timestamp=_when(ts),
        )
        for ts, v in sorted(buckets.items(), key=lambda kv: _when(kv[0]))
    ]


def _sandbox(data: Any) -> WireSandbox:
    return WireSandbox.from_wire(data, "sandbox")


def _labels(data: Any) -> dict[str, str]:
    return SandboxLabels.from_wire(data, "labels").labels


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _minutes(value: int, what: str, negative_ok: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{what} must be a whole number of minutes")
    if value < 0 and not negative_ok:
        raise BadRequest(f"{what} must be 0 (disabled) or a positive number of minutes")
    return value


class ControlCalls:
    def __init__(self, endpoints: Endpoints, sandbox_id: str, toolbox: Toolbox) -> None:
        self.ep = endpoints
        self.base = f"/sandbox/{seg(sandbox_id)}"
        self.toolbox = toolbox

    def set_labels(self, labels: dict[str, str]) -> Call[dict[str, str]]:
        url = self.ep.api(f"{self.base}/labels")
        return Call("PUT", url, "set labels", _labels, SandboxLabels(dict(labels)).to_wire())

    def interval(self, kind: str, minutes: int, what: str) -> Call[WireSandbox]:
        url = self.ep.api(f"{self.base}/{kind}/{minutes}")
        return Call("POST", url, what, _sandbox)

    def refresh_activity(self) -> Call[None]:
        url = self.ep.api(f"{self.base}/last-activity")
        return Call("POST", url, "refresh activity", lambda _: None, expect_body=False)

    def resize(self, cpu: int | None, memory: int | None, disk: int | None) -> Call[WireSandbox]:
        body = wire_body(ResizeSandbox(cpu=cpu, memory=memory, disk=disk))
        return Call("POST", self.ep.api(f"{self.base}/resize"), "resize sandbox", _sandbox, body)

    def metrics_latest(self) -> Call[SandboxMetrics]:
        return self.toolbox.call("GET", "/system/metrics", "get metrics", _from_reading)

    def metrics(self, start: datetime | None, end: datetime | None) -> Call[list[SandboxMetrics]]:
        params = {}
        if start is not None:
            params["from"] = _iso(start)
        if end is not None:
            params["to"] = _iso(end)
        url = self.ep.api(f"{self.base}/telemetry/metrics")
        return Call("GET", url, "get metrics", _from_series, params=params)


def _resize_args(resources: Any, cpu: int | None, memory: int | None, disk: int | None) -> Any:
    """Either a `Resources`-like object (the official SDK's way) or keywords."""
    if resources is not None:
        cpu = getattr(resources, "cpu", None) if cpu is None else cpu
        memory = getattr(resources, "memory", None) if memory is None else memory
        disk = getattr(resources, "disk", None) if disk is None else disk
    return cpu, memory, disk


class SyncControl:
    _t: SyncTransport
    _control: ControlCalls
    labels: dict[str, str]
    if TYPE_CHECKING:  # given by the sandbox class this is mixed into

        def _apply(self, wire: WireSandbox) -> None: ...

    def set_labels(self, labels: dict[str, str]) -> dict[str, str]:
        """Replace the sandbox's labels; returns them as stored."""
        self.labels = self._t.call(self._control.set_labels(labels))
        return self.labels

    def set_autostop_interval(self, interval: int) -> None:
        """Stop after `interval` idle minutes (0: never)."""
        call = self._control.interval(
            "autostop", _minutes(interval, "auto-stop interval"), "set auto-stop interval"
        )
        self._apply(self._t.call(call))

    def set_auto_delete_interval(self, interval: int) -> None:
        """Delete `interval` minutes after stopping (0: on stop; negative: never)."""
        call = self._control.interval(
            "autodelete", _minutes(interval, "auto-delete interval", True),
            "set auto-delete interval",
        )  # fmt: skip
        self._apply(self._t.call(call))

    def set_auto_archive_interval(self, interval: int) -> None:
        call = self._control.interval(
            "autoarchive", _minutes(interval, "auto-archive interval"), "set auto-archive interval"
        )
        self._apply(self._t.call(call))

    def set_auto_pause_interval(self, interval: int) -> None:
        call = self._control.interval(
            "autopause", _minutes(interval, "auto-pause interval"), "set auto-pause interval"
        )
        self._apply(self._t.call(call))

    def set_ttl(self, ttl_minutes: int) -> None:
        """Delete the sandbox `ttl_minutes` from now, whatever its state (0: no TTL)."""
        call = self._control.interval("ttl", _minutes(ttl_minutes, "TTL"), "set TTL")
        self._apply(self._t.call(call))

    def refresh_activity(self) -> None:
        """Count as activity now: postpones auto-stop."""
        self._t.call(self._control.refresh_activity())

    def resize(
        self,
        resources: Any = None,
        *,
        cpu: int | None = None,
        memory: int | None = None,
        disk: int | None = None,
    ) -> None:
        """New CPU/memory (in place while running) or disk (stopped only, grow only)."""
        call = self._control.resize(*_resize_args(resources, cpu, memory, disk))
        self._apply(self._t.call(call))

    def get_metrics_latest(self) -> SandboxMetrics:
        return self._t.call(self._control.metrics_latest())

    def get_metrics(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[SandboxMetrics]:
        """Samples taken while the sandbox ran, between `start` and `end` (default: all)."""
        return self._t.call(self._control.metrics(start, end))


class AsyncControl:
    _t: AsyncTransport
    _control: ControlCalls
    labels: dict[str, str]
    if TYPE_CHECKING:  # given by the sandbox class this is mixed into

        def _apply(self, wire: WireSandbox) -> None: ...

    async def set_labels(self, labels: dict[str, str]) -> dict[str, str]:
        """Replace the sandbox's labels; returns them as stored."""
        self.labels = await self._t.call(self._control.set_labels(labels))
        return self.labels

    async def set_autostop_interval(self, interval: int) -> None:
        call = self._control.interval(
            "autostop", _minutes(interval, "auto-stop interval"), "set auto-stop interval"
        )
        self._apply(await self._t.call(call))

    async def set_auto_delete_interval(self, interval: int) -> None:
        call = self._control.interval(
            "autodelete", _minutes(interval, "auto-delete interval", True),
            "set auto-delete interval",
        )  # fmt: skip
        self._apply(await self._t.call(call))

    async def set_auto_archive_interval(self, interval: int) -> None:
        call = self._control.interval(
            "autoarchive", _minutes(interval, "auto-archive interval"), "set auto-archive interval"
        )
        self._apply(await self._t.call(call))

    async def set_auto_pause_interval(self, interval: int) -> None:
        call = self._control.interval(
            "autopause", _minutes(interval, "auto-pause interval"), "set auto-pause interval"
        )
        self._apply(await self._t.call(call))

    async def set_ttl(self, ttl_minutes: int) -> None:
        call = self._control.interval("ttl", _minutes(ttl_minutes, "TTL"), "set TTL")
        self._apply(await self._t.call(call))

    async def refresh_activity(self) -> None:
        await self._t.call(self._control.refresh_activity())

    async def resize(
        self,
        resources: Any = None,
        *,
        cpu: int | None = None,
        memory: int | None = None,
        disk: int | None = None,
    ) -> None:
        call = self._control.resize(*_resize_args(resources, cpu, memory, disk))
        self._apply(await self._t.call(call))

    async def get_metrics_latest(self) -> SandboxMetrics:
        return await self._t.call(self._control.metrics_latest())

    async def get_metrics(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[SandboxMetrics]:
        return await self._t.call(self._control.metrics(start, end))
