"""Sandbox control through the unmodified official SDK: labels, lifecycle intervals,
TTL, activity, resize, metrics, and the server's Prometheus `/metrics`.

A server of this module's own samples metrics every 0.2 s and runs the
lifecycle on a 1-second "minute", so TTL and auto-stop happen within a test.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cgroupfiles import HOST, limits
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

GiB = 1 << 30
MINUTE = 1.0  # seconds in a lifecycle "minute" on this module's server


@pytest.fixture(scope="module")
def ctl_server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-ctl-") as tmp:
        env = {
            "COVE_METRICS_INTERVAL_SECONDS": "0.2",
            "COVE_LIFECYCLE_MINUTE_SECONDS": str(MINUTE),
        }
        proc = ServerProcess(Path(tmp) / "data", ["ctl-a", "ctl-b"], env=env).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


def _client(server: ServerProcess, key: str) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=key, api_url=server.api_url))


@pytest.fixture(scope="module")
def dt(ctl_server: ServerProcess) -> Any:
    return _client(ctl_server, ctl_server.keys[0])


@pytest.fixture(scope="module")
def other(ctl_server: ServerProcess) -> Any:
    return _client(ctl_server, ctl_server.keys[1])


@pytest.fixture
def http(ctl_server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ctl_server.key}"}
    with httpx.Client(base_url=ctl_server.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
def sb(dt: Any) -> Iterator[Any]:
    sandbox = dt.create()
    try:
        yield sandbox
    finally:
        try:
            dt.delete(sandbox)
        except Exception as exc:  # a test may have deleted it (TTL) already
            if "not found" not in str(exc).lower():
                raise


# -- labels ---------------------------------------------------------------------------


def test_set_labels_replaces_them_and_list_filters_on_them(dt: Any, other: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams, ListSandboxesQuery

    a = dt.create(CreateSandboxFromSnapshotParams(labels={"old": "x"}))
    b = dt.create()
    try:
        got = a.set_labels({"team": "red", "env": "dev"})
        assert got == {"team": "red", "env": "dev", "code-toolbox-language": "python"}
        b.set_labels({"team": "blue", "env": "dev"})
        fresh = dt.get(a.id)
        assert fresh.labels == got  # replaced: "old" is gone

        def ids(labels: dict[str, str], client: Any = dt) -> set[str]:
            return {s.id for s in client.list(ListSandboxesQuery(labels=labels))}

        assert ids({"team": "red"}) == {a.id}
        assert ids({"env": "dev"}) >= {a.id, b.id}
        assert ids({"team": "red", "env": "prod"}) == set()
        assert ids({"old": "x"}) == set()
        assert ids({"team": "red"}, other) == set()  # another key's sandboxes stay hidden
    finally:
        dt.delete(a)
        dt.delete(b)


def test_bad_labels_are_400(sb: Any, http: httpx.Client) -> None:
    url = f"/api/sandbox/{sb.id}/labels"
    r = http.put(url, json={"labels": {"k": 1}})
    assert r.status_code == 400 and "labels.k" in r.json()["message"]
    r = http.put(url, json={"labels": {"code-toolbox-language": "javascript"}})
    assert r.status_code == 400 and "cannot change" in r.json()["message"]
    r = http.put(url, json={})
    assert r.status_code == 400 and "labels" in r.json()["message"]
    r = http.get("/api/sandbox", params={"labels": '{"a": 1}'})
    assert r.status_code == 400


# -- lifecycle setters ------------------------------------------------------------------


def test_intervals_and_ttl_are_stored_and_shown(dt: Any, sb: Any) -> None:
    sb.set_autostop_interval(30)
    sb.set_auto_archive_interval(120)
    sb.set_auto_pause_interval(0)
    sb.set_auto_delete_interval(60)
    sb.set_ttl(100)
    fresh = dt.get(sb.id)
    assert fresh.auto_stop_interval == 30
    assert fresh.auto_archive_interval == 120
    assert fresh.auto_pause_interval == 0
    assert fresh.auto_delete_interval == 60
    destroy_at = datetime.fromisoformat(fresh.auto_destroy_at.replace("Z", "+00:00"))
    expected = datetime.now(UTC) + timedelta(seconds=100 * MINUTE)
    assert abs((destroy_at - expected).total_seconds()) < 10
    # The official SDK documents -1 as "auto-delete disabled"; 0 disables the others.
    sb.set_auto_delete_interval(-1)
    sb.set_autostop_interval(0)
    sb.set_ttl(0)
    fresh = dt.get(sb.id)
    assert (fresh.auto_delete_interval, fresh.auto_stop_interval) == (-1, 0)
    assert fresh.auto_destroy_at is None
    assert fresh.state == "started"


def test_negative_or_bad_intervals_are_400_unknown_sandbox_404(sb: Any, http: httpx.Client) -> None:
    for kind in ("autostop", "autoarchive", "autopause", "ttl"):
        r = http.post(f"/api/sandbox/{sb.id}/{kind}/-1")
        assert r.status_code == 400, (kind, r.text)
        assert "positive" in r.json()["message"]
        r = http.post(f"/api/sandbox/{sb.id}/{kind}/soon")
        assert r.status_code == 400 and "whole number" in r.json()["message"]
        r = http.post(f"/api/sandbox/no-such-sandbox/{kind}/5")
        assert r.status_code == 404
    r = http.post(f"/api/sandbox/{sb.id}/autodelete/-5")
    assert r.status_code == 200 and r.json()["autoDeleteInterval"] == -1
    for method, path in [
        ("PUT", "labels"),
        ("POST", "last-activity"),
        ("POST", "resize"),
        ("GET", "telemetry/metrics"),
    ]:
        r = http.request(method, f"/api/sandbox/no-such-sandbox/{path}", json={"cpu": 1})
        assert r.status_code == 404, (path, r.text)
    assert http.get("/toolbox/no-such-sandbox/system/metrics").status_code == 404


def test_ttl_deletes_the_sandbox_when_it_runs_out(dt: Any, sb: Any) -> None:
    from daytona import DaytonaNotFoundError

    sb.set_ttl(1)  # one (1-second) minute

    def gone() -> bool:
        try:
            dt.get(sb.id)
        except DaytonaNotFoundError:
            return True
        return False

    wait_for(gone, 15, "the TTL to delete the sandbox")


def test_refresh_activity_postpones_auto_stop(dt: Any, sb: Any, http: httpx.Client) -> None:
    before = dt.get(sb.id).last_activity_at
    sb.set_autostop_interval(2)  # two (1-second) minutes idle
    deadline = time.monotonic() + 4 * MINUTE
    while time.monotonic() < deadline:  # active for longer than the interval
        sb.refresh_activity()
        assert dt.get(sb.id).state == "started"
        time.sleep(0.3)
    assert dt.get(sb.id).last_activity_at > before
    r = http.post(f"/api/sandbox/{sb.id}/last-activity")
    assert r.status_code == 201
    wait_for(lambda: dt.get(sb.id).state == "stopped", 15, "auto-stop once idle")


# -- resize -------------------------------------------------------------------------------


@pytest.mark.skipif(HOST is None, reason="no cgroups on this host: limits are not enforced")
def test_resize_changes_cgroup_limits_in_place_and_processes_keep_running(sb: Any) -> None:
    from daytona import Resources, SessionExecuteRequest

    assert limits(sb.id).memory_bytes == 1 * GiB
    sb.process.create_session("keep")
    started = sb.process.execute_session_command(
        "keep", SessionExecuteRequest(command="echo $$ > /tmp/pid; exec sleep 600", run_async=True)
    )

    def written_pid() -> str | None:
        # Not cat's output alone: before the command writes it, that is cat's error.
        r = sb.process.exec("cat /tmp/pid")
        return r.result.strip() if r.exit_code == 0 and r.result.strip().isdigit() else None

    pid = wait_for(written_pid, 10, "the pid")

    sb.resize(Resources(cpu=2, memory=2))
    assert (sb.cpu, sb.memory, sb.state) == (2, 2, "started")
    got = limits(sb.id)
    assert got.memory_bytes == 2 * GiB
    assert got.cpus == 2.0
    # The same process is still there, and its command has not ended.
    assert sb.process.exec(f"kill -0 {pid} && echo alive").result.strip() == "alive"
    cmd = sb.process.get_session_command("keep", started.cmd_id)
    assert cmd.exit_code is None
    latest = sb.get_metrics_latest()
    assert (latest.cpu_count, latest.mem_total) == (2, 2 * GiB)

    sb.resize(Resources(memory=1))  # down again: it uses far less
    assert limits(sb.id).memory_bytes == 1 * GiB
    assert sb.process.exec(f"kill -0 {pid} && echo alive").result.strip() == "alive"


@pytest.mark.skipif(HOST is None, reason="no cgroups on this host: limits are not enforced")
def test_resize_below_current_memory_use_is_409_with_the_use(dt: Any, http: httpx.Client) -> None:
    from daytona import Resources, SessionExecuteRequest

    sb = dt.create()
    try:
        sb.resize(Resources(memory=2))  # room for what it is about to hold
        hold = (
            "python3 -c \"b = b'x' * (1200 << 20); open('/tmp/ready', 'w').write('1'); "
            'import time; time.sleep(600)"'
        )
        sb.process.create_session("hold")
        sb.process.execute_session_command(
            "hold", SessionExecuteRequest(command=hold, run_async=True)
        )
        ready = "test -s /tmp/ready && echo yes"
        wait_for(lambda: sb.process.exec(ready).result.strip() == "yes", 30, "1200 MiB held")
        resp = http.post(f"/api/sandbox/{sb.id}/resize", json={"memory": 1})
        assert resp.status_code == 409
        message = resp.json()["message"]
        assert "uses" in message and "MiB" in message
        used_mib = int(message.split("uses ")[1].split(" MiB")[0])
        assert used_mib >= 1200
        with pytest.raises(Exception, match="uses"):
            sb.resize(Resources(memory=1))
        assert limits(sb.id).memory_bytes == 2 * GiB  # unchanged
        assert sb.process.exec("echo ok").result.strip() == "ok"
    finally:
        dt.delete(sb)


def test_resize_rules_for_disk_and_bad_sizes(dt: Any, sb: Any, http: httpx.Client) -> None:
    from daytona import Resources

    url = f"/api/sandbox/{sb.id}/resize"
    assert http.post(url, json={}).status_code == 400
    r = http.post(url, json={"cpu": 0})
    assert r.status_code == 400 and "cpu" in r.json()["message"]
    r = http.post(url, json={"disk": 5})
    assert r.status_code == 409 and "stop it first" in r.json()["message"]
    r = http.post(url, json={"disk": 1})
    assert r.status_code == 400 and "only grow" in r.json()["message"]
    sb.stop()
    sb.resize(Resources(cpu=2, disk=5))
    assert (sb.cpu, sb.disk, sb.state) == (2, 5, "stopped")
    sb.start()
    fresh = dt.get(sb.id)
    assert (fresh.cpu, fresh.disk) == (2, 5)
    if HOST is not None:
        assert limits(sb.id).cpus == 2.0  # the new size applied at start


# -- metrics ------------------------------------------------------------------------------


def test_metrics_latest_reads_cpu_memory_and_disk(sb: Any) -> None:
    from daytona import SessionExecuteRequest

    sb.process.exec("head -c 8M /dev/urandom > big.bin")
    sb.process.create_session("busy")
    sb.process.execute_session_command(
        "busy",
        SessionExecuteRequest(command="timeout 20 sh -c 'while :; do :; done'", run_async=True),
    )
    m = wait_for(lambda: (x := sb.get_metrics_latest()).cpu_used_pct > 10 and x, 15, "CPU use")
    assert m.cpu_count == 1
    assert m.mem_total == 1 * GiB
    assert 0 < m.mem_used < m.mem_total
    assert m.disk_total == 3 * GiB
    assert m.disk_used >= 8 << 20
    assert abs((datetime.now(UTC) - m.timestamp).total_seconds()) < 30


def test_metrics_history_is_sampled_filtered_and_dropped_with_the_sandbox(
    dt: Any, ctl_server: ServerProcess
) -> None:
    sb = dt.create()
    history = ctl_server.data_dir / "metrics" / f"{sb.id}.jsonl"
    try:
        samples = wait_for(lambda: len(s := sb.get_metrics()) >= 3 and s, 20, "3 samples")
        times = [s.timestamp for s in samples]
        assert times == sorted(times)
        for s in samples:
            assert (s.cpu_count, s.mem_total, s.disk_total) == (1, GiB, 3 * GiB)
            assert s.mem_used > 0
        middle = times[1]
        later = sb.get_metrics(start=middle)
        assert later and all(s.timestamp >= middle for s in later)
        assert sb.get_metrics(end=times[0] - timedelta(hours=1)) == []
        assert history.exists()
    finally:
        dt.delete(sb)
    assert not history.exists()


def test_toolbox_system_metrics_and_a_stopped_sandbox(sb: Any, http: httpx.Client) -> None:
    r = http.get(f"/toolbox/{sb.id}/system/metrics")
    assert r.status_code == 200
    body = r.json()
    for key in ("cpuCount", "cpuUsedPct", "memTotal", "memUsed", "memCache", "diskTotal",
                "diskUsed", "diskFree", "timestamp", "timestampUnix"):  # fmt: skip
        assert key in body, key
    assert body["diskFree"] == body["diskTotal"] - body["diskUsed"]
    sb.stop()
    r = http.get(f"/toolbox/{sb.id}/system/metrics")
    assert r.status_code == 409 and "stopped" in r.json()["message"]
    r = http.get(f"/api/sandbox/{sb.id}/telemetry/metrics", params={"from": "yesterday"})
    assert r.status_code == 400 and "ISO 8601" in r.json()["message"]
    r = http.get(f"/api/sandbox/{sb.id}/telemetry/metrics", params={"metricNames": "cpu"})
    assert r.status_code == 400 and "unknown" in r.json()["message"]


# -- the server's own metrics and its route list ----------------------------------------------


def test_prometheus_metrics_parse_and_count(
    dt: Any, sb: Any, ctl_server: ServerProcess, http: httpx.Client
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    http.get("/api/sandbox/no-such-sandbox")  # one 404
    assert httpx.get(f"{ctl_server.url}/metrics").status_code == 401  # needs a key
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    states = {s.labels["state"]: s.value for s in families["cove_sandboxes"].samples}
    assert states["started"] >= 1
    assert set(states) >= {"started", "stopped", "error", "creating"}
    creates = [s for s in families["cove_sandbox_creates"].samples if s.name.endswith("_total")]
    assert creates[0].value >= 1
    latency = families["cove_http_request_duration_seconds"]
    routes = {s.labels["route"] for s in latency.samples if s.name.endswith("_count")}
    assert "/api/sandbox" in routes and "/api/sandbox/{ref}" in routes
    errors = [
        s
        for s in families["cove_http_errors"].samples
        if s.name.endswith("_total") and s.labels["status"] == "404"
    ]
    assert any(s.labels["route"] == "/api/sandbox/{ref}" and s.value >= 1 for s in errors)


def test_control_routes_are_in_openapi(http: httpx.Client) -> None:
    paths = http.get("/api/openapi.json").json()["paths"]
    ref = "/api/sandbox/{sandboxIdOrName}"
    for path, method in [
        (f"{ref}/labels", "put"),
        (f"{ref}/autostop/{{interval}}", "post"),
        (f"{ref}/autodelete/{{interval}}", "post"),
        (f"{ref}/autoarchive/{{interval}}", "post"),
        (f"{ref}/autopause/{{interval}}", "post"),
        (f"{ref}/ttl/{{ttlMinutes}}", "post"),
        (f"{ref}/last-activity", "post"),
        (f"{ref}/resize", "post"),
        (f"{ref}/telemetry/metrics", "get"),
        ("/api/config", "get"),
        ("/toolbox/{sandboxId}/system/metrics", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths.get(path, {}), path
