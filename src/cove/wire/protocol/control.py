"""Sandbox control wire models: labels, resize, metrics (Daytona's shapes).

`SystemMetrics` is the toolbox's `/system/metrics` reading; `MetricsResponse`
is the control plane's history (`/sandbox/{id}/telemetry/metrics`), one
series per metric name, as Daytona's telemetry answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.wire.model import WireModel

# Daytona's metric names, each one field of a sample.
METRIC_FIELDS: dict[str, str] = {
    "daytona.sandbox.cpu.utilization": "cpu_used_pct",
    "daytona.sandbox.cpu.limit": "cpu_count",
    "daytona.sandbox.memory.usage": "mem_used",
    "daytona.sandbox.memory.limit": "mem_total",
    "daytona.sandbox.memory.cache": "mem_cache",
    "daytona.sandbox.filesystem.usage": "disk_used",
    "daytona.sandbox.filesystem.total": "disk_total",
}


@dataclass
class SandboxLabels(WireModel):
    labels: dict[str, str]


@dataclass
class ResizeSandbox(WireModel):
    """New sizes in Daytona's units (cores, GiB); an absent field stays as it is."""

    cpu: int | None = None
    memory: int | None = None
    disk: int | None = None


@dataclass
class SystemMetrics(WireModel):
    """One reading: CPU as % of the sandbox's CPU limit; memory and disk in bytes."""

    cpu_count: int
    cpu_used_pct: float
    mem_total: int
    mem_used: int
    mem_cache: int
    disk_total: int
    disk_used: int
    disk_free: int
    timestamp: str  # ISO 8601, UTC
    timestamp_unix: int


@dataclass
class MetricDataPoint(WireModel):
    timestamp: str
    value: float


@dataclass
class MetricSeries(WireModel):
    metric_name: str
    data_points: list[MetricDataPoint] = field(default_factory=list)


@dataclass
class MetricsResponse(WireModel):
    series: list[MetricSeries] = field(default_factory=list)
