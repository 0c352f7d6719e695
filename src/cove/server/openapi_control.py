"""The OpenAPI description of the control routes (`server/control.py`) and `/metrics`."""

from __future__ import annotations

from typing import Any

from cove.wire import protocol

JSON = dict[str, Any]


def control_paths(
    m: Any, op: Any, param: Any, sandbox: JSON, ref: list[JSON], sid: list[JSON]
) -> JSON:
    """`m` registers a model, `op` makes an operation, `param` a parameter (openapi.py's)."""
    integer = {"type": "integer"}

    def interval(name: str, summary: str) -> JSON:
        return {"post": op(summary, [*ref, param(name, "path", integer)], response=sandbox)}

    base = "/api/sandbox/{sandboxIdOrName}"
    time_query = [
        param("from", "query", {"type": "string", "format": "date-time"}),
        param("to", "query", {"type": "string", "format": "date-time"}),
        param("metricNames", "query", {"type": "array", "items": {"type": "string"}}),
    ]
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        f"{base}/labels": {
            "put": op(
                "Replace a sandbox's labels",
                ref,
                m(protocol.SandboxLabels),
                response=m(protocol.SandboxLabels),
            )
        },
        f"{base}/autostop/{{interval}}": interval(
            "interval", "Auto-stop after this many idle minutes (0: never; negative: 400)"
        ),
        f"{base}/autodelete/{{interval}}": interval(
            "interval", "Auto-delete this many minutes after stopping (0: on stop; -1: never)"
        ),
        f"{base}/autoarchive/{{interval}}": interval(
            "interval", "Auto-archive interval in minutes (stored; negative: 400)"
        ),
        f"{base}/autopause/{{interval}}": interval(
            "interval", "Auto-pause interval in minutes (stored; negative: 400)"
        ),
        f"{base}/ttl/{{ttlMinutes}}": interval(
            "ttlMinutes", "Delete the sandbox this many minutes from now (0: no TTL)"
        ),
        f"{base}/last-activity": {
            "post": op(
                "Count as activity now (postpones auto-stop)",
                ref,
                None,  # Daytona's optional {"activityType"} body is ignored
                ("201",),
            )
        },
        f"{base}/resize": {
            "post": op(
                "Resize: CPU and memory in place while running (409 under current memory use); "
                "disk only when stopped, only up",
                ref,
                m(protocol.ResizeSandbox),
                response=sandbox,
            )
        },
        f"{base}/telemetry/metrics": {
            "get": op(
                "Metrics history (one series per metric name)",
                [*ref, *time_query],
                response=m(protocol.MetricsResponse),
            )
        },
        "/api/config": {"get": op("Server configuration the official SDK reads", [])},
        "/toolbox/{sandboxId}/system/metrics": {
            "get": op("Current CPU, memory and disk use", sid, response=m(protocol.SystemMetrics))
        },
        "/metrics": {
            "get": {
                "summary": "The server's figures in Prometheus text format",
                "responses": {"200": {"description": "success", "content": text}},
            }
        },
    }
