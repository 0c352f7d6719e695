"""A control-plane restart (even kill -9) loses no sandbox and stops no process."""

from __future__ import annotations

import os
import signal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cgroupfiles import find_dirs
from tests.reliability.helpers import agent_pid, sandbox_pids, wait_for
from tests.serverproc import ServerProcess

KEY = "restart-key"


@pytest.fixture
def own_server() -> Iterator[ServerProcess]:
    """A server of this test's own, on a data dir that outlives its restarts."""
    with tempfile.TemporaryDirectory(prefix="cove-restart-") as tmp:
        proc = ServerProcess(Path(tmp) / "data", [KEY]).start()
        try:
            yield proc
        finally:
            if proc.proc is None:
                proc.start()
            with httpx.Client(base_url=proc.url, headers=_auth(), timeout=30) as c:
                for item in c.get("/api/sandbox").json()["items"]:
                    c.delete(f"/api/sandbox/{item['id']}")
            proc.stop()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=_auth(), timeout=60)


def _exec(c: httpx.Client, sid: str, command: str) -> dict[str, Any]:
    body: dict[str, Any] = c.post(
        f"/toolbox/{sid}/process/execute", json={"command": command}
    ).json()
    return body


# Each value is renamed into place: a reader never sees the file truncated
# between a write's open and its data (which read as '' and failed the test).
COUNTER = (
    "nohup sh -c 'i=0; while :; do i=$((i+1)); echo $i > count.new; mv count.new count;"
    " sleep 0.05; done' >/dev/null 2>&1 &"
)


def test_kill_9_of_the_server_loses_nothing(own_server: ServerProcess) -> None:
    with _client(own_server) as c:
        sid = c.post("/api/sandbox", json={"name": "survivor"}).json()["id"]
        _exec(c, sid, f"echo kept > file.txt; {COUNTER}")
        wait_for(lambda: _exec(c, sid, "cat count 2>/dev/null")["stdout"].strip(), 30, "counter")
    own_server.kill9()
    own_server.start()
    with _client(own_server) as c:
        record = c.get("/api/sandbox/survivor").json()
        assert record["id"] == sid and record["state"] == "started"
        first = int(_exec(c, sid, "cat count")["stdout"])
        # The process started before the restart is still counting.
        wait_for(lambda: int(_exec(c, sid, "cat count")["stdout"]) > first, 30, "counting on")
        assert _exec(c, sid, "cat file.txt")["stdout"] == "kept\n"
        # And the new control plane watches the sandbox again.
        os.kill(agent_pid(sid), signal.SIGKILL)
        wait_for(lambda: c.get(f"/api/sandbox/{sid}").json()["state"] == "error", 30, "error")


def test_a_graceful_restart_keeps_sandboxes_running_too(own_server: ServerProcess) -> None:
    with _client(own_server) as c:
        sid = c.post("/api/sandbox", json={}).json()["id"]
        pid = agent_pid(sid)
    own_server.stop()
    own_server.start()
    with _client(own_server) as c:
        assert agent_pid(sid) == pid
        assert _exec(c, sid, "echo still here")["stdout"] == "still here\n"


def test_leftovers_of_sandboxes_the_store_forgot_are_removed(own_server: ServerProcess) -> None:
    with _client(own_server) as c:
        sid = c.post("/api/sandbox", json={}).json()["id"]
    assert sandbox_pids(sid)
    own_server.kill9()
    db = sqlite3.connect(own_server.data_dir / "cove.db")
    with db:
        db.execute("DELETE FROM sandboxes WHERE id=?", (sid,))
    db.close()
    own_server.start()
    assert sandbox_pids(sid) == []
    assert find_dirs(Path("/sys/fs/cgroup"), sid) == []


def _demux(data: bytes) -> bytes:
    """Payload bytes of a log-follow stream (markers removed)."""
    return data.replace(b"\x01\x01\x01", b"").replace(b"\x02\x02\x02", b"")


def _follow(
    server: ServerProcess, sid: str, cmd: str, offset: int, sink: list[bytes]
) -> int | None:
    """Follow a command's log from `offset` until the stream ends; the close code."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = (
        f"ws://127.0.0.1:{server.port}/toolbox/{sid}/process/session/svc/command/{cmd}"
        f"/logs?follow=true&offset={offset}"
    )
    with connect(url, additional_headers=_auth(), open_timeout=10) as ws:
        try:
            while True:
                message = ws.recv(timeout=30)
                sink.append(message if isinstance(message, bytes) else message.encode())
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.timeout(300)
def test_a_log_follower_resumes_after_a_restart_and_nothing_is_lost(
    own_server: ServerProcess,
) -> None:
    import threading

    with _client(own_server) as c:
        sid = c.post("/api/sandbox", json={}).json()["id"]
        c.post(f"/toolbox/{sid}/process/session", json={"sessionId": "svc"})
        cmd = c.post(
            f"/toolbox/{sid}/process/session/svc/exec",
            json={
                "command": "for i in $(seq 1 40); do echo line$i; sleep 0.1; done",
                "runAsync": True,
            },
        ).json()["cmdId"]
    received: list[bytes] = []
    first = threading.Thread(target=lambda: _follow(own_server, sid, cmd, 0, received), daemon=True)
    first.start()
    wait_for(lambda: b"line5\n" in _demux(b"".join(received)), 30, "the first lines")
    own_server.kill9()  # the follower's connection drops mid-stream
    first.join(15)
    before = _demux(b"".join(received))
    own_server.start()
    rest: list[bytes] = []
    code = _follow(own_server, sid, cmd, len(before), rest)
    assert code == 1000
    whole = (before + _demux(b"".join(rest))).decode()
    assert whole == "".join(f"line{i}\n" for i in range(1, 41))
    with _client(own_server) as c:
        logs = c.get(f"/toolbox/{sid}/process/session/svc/command/{cmd}/logs").json()
        command = c.get(f"/toolbox/{sid}/process/session/svc/command/{cmd}").json()
    assert logs["stdout"] == whole
    assert command["exitCode"] == 0
