"""`cove labels`, `cove lifecycle`, `cove refresh-activity`, `cove resize`, `cove metrics`:
sandbox control through the SDK's calls of the same names."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cove.cli.terminal import progress
from cove.sdk import Cove, SandboxMetrics


def _client(args: argparse.Namespace) -> Cove:
    with progress("starting Cove", enabled=not args.json):
        return Cove(api_url=args.api_url, api_key=args.api_key, keep=True)


def parse_labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"labels are KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def labels_command(args: argparse.Namespace) -> int:
    with _client(args) as c:
        sb = c.get(args.sandbox)
        labels = sb.set_labels(parse_labels(args.labels)) if args.labels else sb.labels
    if args.json:
        print(json.dumps(labels, indent=2))
    else:
        for key, value in sorted(labels.items()):
            print(f"{key}={value}")
    return 0


def lifecycle_command(args: argparse.Namespace) -> int:
    setters = [
        ("autostop", "set_autostop_interval"),
        ("auto_delete", "set_auto_delete_interval"),
        ("auto_archive", "set_auto_archive_interval"),
        ("auto_pause", "set_auto_pause_interval"),
        ("ttl", "set_ttl"),
    ]
    with _client(args) as c:
        sb = c.get(args.sandbox)
        for option, method in setters:
            value = getattr(args, option)
            if value is not None:
                getattr(sb, method)(value)
    shown = {
        "autoStopInterval": sb.auto_stop_interval,
        "autoDeleteInterval": sb.auto_delete_interval,
        "autoArchiveInterval": sb.auto_archive_interval,
        "autoPauseInterval": sb.auto_pause_interval,
    }
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        for key, value in shown.items():
            print(f"{key}: {value}")
    return 0


def refresh_activity_command(args: argparse.Namespace) -> int:
    with _client(args) as c:
        c.get(args.sandbox).refresh_activity()
    return 0


def resize_command(args: argparse.Namespace) -> int:
    with _client(args) as c, progress("resizing", enabled=not args.json):
        sb = c.get(args.sandbox)
        sb.resize(cpu=args.cpu, memory=args.memory, disk=args.disk)
    if args.json:
        print(json.dumps({"cpu": sb.cpu, "memory": sb.memory, "disk": sb.disk}, indent=2))
    else:
        print(f"{sb.id}: {sb.cpu} CPU, {sb.memory} GiB memory, {sb.disk} GiB disk")
    return 0


def _metrics_json(m: SandboxMetrics) -> dict[str, Any]:
    return {
        "timestamp": m.timestamp.isoformat(), "cpuCount": m.cpu_count,
        "cpuUsedPct": m.cpu_used_pct, "memUsed": m.mem_used, "memTotal": m.mem_total,
        "memCache": m.mem_cache, "diskUsed": m.disk_used, "diskTotal": m.disk_total,
    }  # fmt: skip


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f}M"


def metrics_command(args: argparse.Namespace) -> int:
    with _client(args) as c:
        sb = c.get(args.sandbox)
        if args.since is None:
            samples = [sb.get_metrics_latest()]
        else:
            samples = sb.get_metrics(start=datetime.now(UTC) - timedelta(seconds=args.since))
    if args.json:
        print(json.dumps([_metrics_json(m) for m in samples], indent=2))
        return 0
    print("TIME                      CPU%   MEM/LIMIT        DISK/LIMIT")
    for m in samples:
        print(
            f"{m.timestamp.isoformat(timespec='seconds'):<25} {m.cpu_used_pct:5.1f}  "
            f"{_mib(m.mem_used) + '/' + _mib(m.mem_total):<15}  "
            f"{_mib(m.disk_used)}/{_mib(m.disk_total)}"
        )
    return 0
