"""Image builds attacked (issue 18, item 3): a step that never ends, a context that
unpacks to far more than it sends, and COPY sources that try to leave the context.

A server of its own with a short build-step timeout (COVE_BUILD_STEP_TIMEOUT),
so a never-ending RUN fails in seconds naming its line and leaves no process
behind. The base image is the Debian stand-in the other image tests build
(cached across sessions in COVE_IMAGE_BASE_CACHE).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(900)  # the first build of a fresh machine makes its base
STEP_SECONDS = 8


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with tempfile.TemporaryDirectory(prefix="cove-build-attack-") as tmp:
        env = {"COVE_BUILD_STEP_TIMEOUT": str(STEP_SECONDS), "COVE_WARM_POOL": "0"}
        server = ServerProcess(Path(tmp) / "data", ["build-attack"], env=env).start()
        try:
            headers = {"Authorization": f"Bearer {server.key}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=900) as client:
                yield client
        finally:
            server.stop()


def context(files: dict[str, str], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def build(api: httpx.Client, tar: bytes, **params: str) -> list[dict[str, Any]]:
    with api.stream("POST", "/api/images/build", params=params, content=tar) as r:
        if r.status_code != 200:
            return [{"status": r.status_code, "body": json.loads(r.read())}]
        return [json.loads(line) for line in r.iter_lines() if line]


def marked_processes(mark: str) -> list[int]:
    """Host pids whose command line holds `mark` (build sandboxes' processes are visible)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if mark.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_warm_the_base(api: httpx.Client) -> None:
    events = build(api, context({"Dockerfile": "FROM python:3.11-slim\nRUN true\n"}))
    assert "image" in events[-1], events[-5:]


@pytest.mark.parametrize(
    "run",
    ["sleep 86400 # never-ends-1", "sh -c 'while :; do :; done' # never-ends-2"],
)
def test_a_step_that_never_ends_fails_at_the_step_timeout(api: httpx.Client, run: str) -> None:
    mark = run.split("# ")[1]
    started = time.monotonic()
    events = build(api, context({"Dockerfile": f"FROM python:3.11-slim\nRUN {run}\n"}))
    took = time.monotonic() - started
    error = events[-1].get("error", {}).get("message", "")
    assert "line 2 (RUN) failed" in error and f"did not finish in {STEP_SECONDS}s" in error, events
    assert took < STEP_SECONDS + 60, took
    # The kill is sent; the kernel reaps on its own time.
    wait_for(lambda: not marked_processes(mark), 20, f"no `{mark}` left running", interval=0.2)


def test_a_daemon_left_running_does_not_hold_the_build(api: httpx.Client) -> None:
    # A duration of this run's own: other runs on the host may leave a `sleep 86400`.
    mark = f"sleep {86400 + int.from_bytes(os.urandom(2), 'big')}"
    dockerfile = f"FROM python:3.11-slim\nRUN ({mark} &) ; echo started # left-behind\n"
    events = build(api, context({"Dockerfile": dockerfile}))
    assert "image" in events[-1] or "did not finish" in str(events[-1]), events[-3:]
    # Killed with the build; the kernel reaps on its own time.
    wait_for(lambda: not marked_processes(mark), 20, f"no `{mark}` left running", interval=0.2)


@pytest.mark.parametrize("source", ["../../etc/passwd", "/etc/shadow", "../", "sub/../../x"])
def test_copy_sources_stay_in_the_context(api: httpx.Client, source: str) -> None:
    dockerfile = f"FROM python:3.11-slim\nCOPY {source} /stolen\nRUN cat /stolen || ls /stolen\n"
    events = build(api, context({"Dockerfile": dockerfile, "sub/ok": "ok\n"}))
    last = events[-1]
    if "image" in last:  # `../` is the context itself, normalised: only its own files
        assert source == "../"
        logs = "".join(e.get("log", "") for e in events)
        assert "root:" not in logs
    else:
        assert "line 2 (COPY) failed" in last["error"]["message"], events[-3:]


def test_links_out_of_the_context_are_refused(api: httpx.Client) -> None:
    files = {"Dockerfile": "FROM python:3.11-slim\nCOPY passwd /p\n"}
    for target in ("/etc/passwd", "../../../../etc/passwd"):
        events = build(api, context(files, {"passwd": target}))
        assert events[0].get("status") == 400, events
        assert "not a usable tar" in events[0]["body"]["message"]
    # The Dockerfile itself may not be named outside the context, nor be a link out of it.
    events = build(api, context(files), dockerfile="../../etc/passwd")
    assert events[0].get("status") == 400 and "no Dockerfile" in events[0]["body"]["message"]
    events = build(api, context({}, {"Dockerfile": "/etc/passwd"}))
    assert events[0].get("status") == 400, events


def test_a_context_that_unpacks_past_the_limit_is_refused(
    api: httpx.Client, tmp_path: Path
) -> None:
    # A sparse 3 GiB member costs a few KiB of tar: what a gzip bomb does, cheaply.
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    subprocess.run(["truncate", "-s", "3G", str(tmp_path / "big")], check=True)
    tar = subprocess.run(
        ["tar", "--sparse", "-C", str(tmp_path), "-cf", "-", "Dockerfile", "big"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert len(tar) < 1 << 20
    events = build(api, tar)
    assert events[0].get("status") == 413, events
    assert "unpacks to 32212254" in events[0]["body"]["message"]


def test_snapshot_fields_with_lone_surrogates_are_a_400(api: httpx.Client) -> None:
    # Found by `make fuzz`: the snapshot was recorded, then its answer could not be
    # encoded (a 500), and the list held a name no client could read.
    for body in (
        {"name": "bad\udc80", "imageName": "python:3.11-slim"},
        {"name": "ok-name", "imageName": "python:3.11-slim", "entrypoint": ["x\ud800"]},
        {"name": "ok-name", "buildInfo": {"dockerfileContent": "FROM x\udc80\n"}},
    ):
        r = api.post("/api/snapshots", content=json.dumps(body))
        assert r.status_code == 400 and "lone surrogate" in r.text, r.text
    listed = api.get("/api/snapshots").json()
    assert not [s for s in listed.get("items", listed) if "ok-name" in json.dumps(s)]
