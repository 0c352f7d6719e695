"""What Cove's sessions add to Daytona's: per-command cwd/envs/timeout,
concurrent async commands, kill and signals, stdin EOF, input echo control,
log resume from an offset, marker-safe streams, log caps, a follow stream
that ends with the command, and sessions that leave nothing running."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, connect_ws

MARK = {1: b"\x01\x01\x01", 2: b"\x02\x02\x02"}


@pytest.fixture
def session(api: httpx.Client, sandbox: Any) -> Iterator[str]:
    """A fresh session; its URL prefix is yielded."""
    sid = f"s-{uuid.uuid4().hex[:8]}"
    assert api.post(f"/toolbox/{sandbox.id}/process/session", json={"sessionId": sid}).is_success
    base = f"/toolbox/{sandbox.id}/process/session/{sid}"
    try:
        yield base
    finally:
        api.delete(base)


def run(api: httpx.Client, base: str, command: str, **extra: Any) -> httpx.Response:
    return api.post(f"{base}/exec", json={"command": command, **extra})


def start(api: httpx.Client, base: str, command: str, **extra: Any) -> str:
    r = run(api, base, command, runAsync=True, **extra)
    assert r.status_code == 202, r.text
    return str(r.json()["cmdId"])


def follow(server: Any, path: str, timeout: float = 20) -> tuple[list[tuple[int, bytes]], int]:
    """Raw follow stream: (channel, payload) chunks and the close code."""
    url = server.url.replace("http", "ws", 1) + path
    chunks: list[tuple[int, bytes]] = []
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(headers=headers) as client, connect_ws(url, client) as ws:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                frame = ws.receive_bytes(timeout=deadline - time.monotonic())
                chunks.append((frame[0], frame[3:]))
                assert frame[:3] == MARK[frame[0]]
        except WebSocketDisconnect as closed:
            return chunks, closed.code
    raise AssertionError("the follow stream did not end")


def wait_done(api: httpx.Client, base: str, cid: str, server: Any) -> dict[str, Any]:
    """The command once it has ended (the follow stream closes exactly then)."""
    follow(server, f"{base}/command/{cid}/logs?follow=true")
    body: dict[str, Any] = api.get(f"{base}/command/{cid}").json()
    return body


def test_per_command_cwd_envs_do_not_change_the_session(api: httpx.Client, session: str) -> None:
    r = run(api, session, 'echo "$(pwd) $ONLY_HERE"', cwd="/tmp", envs={"ONLY_HERE": "yes"})
    assert r.json()["stdout"] == "/tmp yes\n"
    after = run(api, session, 'echo "$(pwd) [$ONLY_HERE]"').json()
    assert after["stdout"] == "/home/user []\n"
    # A command that changes its own cwd/env does change the session's.
    run(api, session, "cd /tmp; export ONLY_HERE=kept", envs={"ONLY_HERE": "yes"})
    assert run(api, session, 'echo "$(pwd) $ONLY_HERE"').json()["stdout"] == "/tmp kept\n"


def test_bad_cwd_env_or_timeout_is_a_400_and_starts_nothing(
    api: httpx.Client, session: str
) -> None:
    for extra in ({"cwd": "/etc/passwd"}, {"envs": {"A=B": "x"}}, {"timeout": -1}):
        r = run(api, session, "echo never", **extra)
        assert r.status_code == 400, (extra, r.text)
    assert api.get(session).json()["commands"] == []


@pytest.mark.timeout(300)
def test_timeout_sync_is_408_with_output_async_ends_137(
    api: httpx.Client, session: str, server: Any
) -> None:
    r = run(api, session, "echo before; sleep 30", timeout=1)
    assert r.status_code == 408
    body = r.json()
    assert body["code"] == "PROCESS_EXECUTION_TIMEOUT"
    assert body["stdout"] == "before\n" and body["timedOut"] is True
    cid = start(api, session, "sleep 30", timeout=1)
    done = wait_done(api, session, cid, server)
    assert done["exitCode"] == 137 and done["timedOut"] is True
    assert run(api, session, "echo still usable").json()["stdout"] == "still usable\n"


def test_async_commands_in_one_session_run_concurrently(
    api: httpx.Client, session: str, server: Any
) -> None:
    flag = f"/tmp/flag-{uuid.uuid4().hex}"
    # The first command can only finish once the second has run.
    waiter = start(api, session, f"while [ ! -e {flag} ]; do sleep 0.05; done; echo waited")
    setter = start(api, session, f"touch {flag}; echo set")
    assert wait_done(api, session, waiter, server)["exitCode"] == 0
    assert wait_done(api, session, setter, server)["exitCode"] == 0
    assert api.get(f"{session}/command/{waiter}/logs").json()["stdout"] == "waited\n"


def test_kill_and_signal_one_command(api: httpx.Client, session: str, server: Any) -> None:
    killed = start(api, session, "sleep 300")
    r = api.post(f"{session}/command/{killed}/kill", json={})
    assert r.status_code == 200, r.text
    assert wait_done(api, session, killed, server)["exitCode"] == 137

    trapped = start(api, session, "trap 'echo got-term; exit 7' TERM; echo ready; sleep 300 & wait")
    chunks: list[bytes] = []
    deadline = time.monotonic() + 30
    while b"ready" not in b"".join(chunks) and time.monotonic() < deadline:
        chunks = [api.get(f"{session}/command/{trapped}/logs").json()["stdout"].encode()]
    r = api.post(f"{session}/command/{trapped}/kill", json={"signal": "TERM"})
    assert r.status_code == 200, r.text
    assert wait_done(api, session, trapped, server)["exitCode"] == 7
    assert api.get(f"{session}/command/{trapped}/logs").json()["stdout"] == "ready\ngot-term\n"
    bad = api.post(f"{session}/command/{trapped}/kill", json={"signal": "NOPE"})
    assert bad.status_code == 400 and "NOPE" in bad.json()["message"], bad.text
    assert api.post(f"{session}/command/{killed}/kill", json={}).status_code == 410


def test_stdin_close_and_input_echo(api: httpx.Client, session: str, server: Any) -> None:
    echoed = start(api, session, "cat; echo eof-seen")
    assert api.post(f"{session}/command/{echoed}/input", json={"data": "abc\n"}).status_code == 204
    assert api.post(f"{session}/command/{echoed}/stdin/close").status_code == 200
    assert wait_done(api, session, echoed, server)["exitCode"] == 0
    # The input is echoed into the log, then cat's copy of it, then EOF.
    out = api.get(f"{session}/command/{echoed}/logs").json()["stdout"]
    assert out == "abc\nabc\neof-seen\n"

    quiet = start(api, session, "cat; echo eof-seen", suppressInputEcho=True)
    api.post(f"{session}/command/{quiet}/input", json={"data": "xyz\n"})
    api.post(f"{session}/command/{quiet}/stdin/close")
    wait_done(api, session, quiet, server)
    assert api.get(f"{session}/command/{quiet}/logs").json()["stdout"] == "xyz\neof-seen\n"
    late = api.post(f"{session}/command/{quiet}/input", json={"data": "late"})
    assert late.status_code == 410


def test_follow_replays_resumes_and_ends_with_the_command(
    api: httpx.Client, session: str, server: Any
) -> None:
    # A neighbour in the same session that outlives the followed command by
    # minutes: the stream must end with its own command, not with the session
    # or at some idle timeout.
    neighbour = start(api, session, "sleep 300")
    cid = start(api, session, "printf abc; printf ERR >&2; sleep 0.5; printf def")
    chunks, code = follow(server, f"{session}/command/{cid}/logs?follow=true")
    assert code == 1000
    assert api.get(f"{session}/command/{cid}").json()["exitCode"] == 0
    assert api.get(f"{session}/command/{neighbour}").json()["exitCode"] is None
    api.post(f"{session}/command/{neighbour}/kill", json={})
    assert b"".join(d for c, d in chunks if c == 1) == b"abcdef"
    assert b"".join(d for c, d in chunks if c == 2) == b"ERR"
    # Resume: offset counts bytes of the combined output (here "abcERRdef").
    chunks, code = follow(server, f"{session}/command/{cid}/logs?follow=true&offset=4")
    assert code == 1000
    assert [(c, d) for c, d in chunks] == [(2, b"RR"), (1, b"def")]


def test_marker_bytes_in_output_cannot_forge_markers(
    api: httpx.Client, session: str, server: Any
) -> None:
    cid = start(api, session, r"printf 'a\001\001\001b\002\002\002c\n'")
    chunks, _ = follow(server, f"{session}/command/{cid}/logs?follow=true")
    assert [c for c, _ in chunks] == [1]
    assert chunks[0][1] == b"a\x1a\x1a\x1ab\x1a\x1a\x1ac\n"
    # The plain GET keeps the bytes as they were.
    assert api.get(f"{session}/command/{cid}/logs").json()["stdout"] == "a\1\1\1b\2\2\2c\n"


def test_each_command_log_is_capped(api: httpx.Client, session: str, sandbox: Any) -> None:
    sid = session.rsplit("/", 1)[1]
    r = run(api, session, "head -c 70000000 /dev/zero | tr '\\0' y; echo end >&2")
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["truncated"] is True and body["exitCode"] == 0
    assert body["stderr"] == "end\n"
    # The JSON answer carries a bounded head; the log on disk keeps up to the cap.
    assert 0 < len(body["stdout"]) <= 64 * 1024 * 1024 and set(body["stdout"]) == {"y"}
    cid = body["cmdId"]
    assert api.get(f"{session}/command/{cid}").json()["truncated"] is True
    size = run(api, session, f"stat -c %s /run/cove/sessions/{sid}/{cid}/stdout").json()
    assert size["stdout"] == f"{64 * 1024 * 1024}\n"


@pytest.mark.timeout(300)
def test_delete_session_leaves_nothing_running(api: httpx.Client, sandbox: Any) -> None:
    base = f"/toolbox/{sandbox.id}/process/session/doomed"
    made = api.post(f"/toolbox/{sandbox.id}/process/session", json={"sessionId": "doomed"})
    assert made.status_code == 201, made.text
    # A setsid'd child, a double-forked one, one that ignores TERM, and the command itself.
    start(
        api,
        base,
        "setsid sleep 301 & (sleep 302 &) ; (trap '' TERM; exec sleep 303) & sleep 304",
    )
    start(api, base, "nohup sleep 305 >/dev/null 2>&1 &")
    # A background job that needs a moment to clean up after TERM gets it.
    late = f"/home/user/late-{uuid.uuid4().hex}"
    start(api, base, f"(trap 'sleep 0.5; echo cleaned > {late}; exit' TERM; sleep 300 & wait) &")
    count = "ps -eo args | grep -c '^sleep 30[0-5]'"
    probe = f"/toolbox/{sandbox.id}/process/execute"
    deadline = time.monotonic() + 30
    while (seen := api.post(probe, json={"command": count}).json()["result"]) != "6\n":
        assert time.monotonic() < deadline, f"the session's processes did not all start: {seen}"
    # The TERM-ignoring one is killed after the grace period, not waited for
    # (the client's 60 s read timeout would end the test first).
    assert api.delete(base).status_code == 204
    assert api.post(probe, json={"command": count}).json()["result"] == "0\n"
    assert api.post(probe, json={"command": f"cat {late}"}).json()["result"] == "cleaned\n"
    zombies = api.post(probe, json={"command": "ps -eo stat | grep -c '^Z' || true"})
    assert zombies.json()["result"] == "0\n"
    assert api.get(base).status_code == 404


def _host_processes(marker: str) -> list[int]:
    """Host pids whose command line contains `marker` (sandboxes are host processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read().replace(b"\0", b" "):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_deleting_the_sandbox_leaves_no_session_process(daytona: Any) -> None:
    from daytona import SessionExecuteRequest

    sb = daytona.create()
    marker = f"sleep 42{uuid.uuid4().int % 1000:03d}"
    try:
        sb.process.create_session("bg")
        sb.process.execute_session_command(
            "bg",
            SessionExecuteRequest(
                command=f"setsid {marker} & ({marker} &); {marker}", run_async=True
            ),
        )
        deadline = time.monotonic() + 30
        while len(_host_processes(marker)) < 3:
            assert time.monotonic() < deadline, "the session's processes did not start"
    finally:
        daytona.delete(sb)
    assert _host_processes(marker) == []


def test_stopping_the_sandbox_terms_session_processes_first(daytona: Any) -> None:
    from daytona import SessionExecuteRequest

    sb = daytona.create()
    try:
        sb.process.create_session("graceful")
        sb.process.execute_session_command(
            "graceful",
            SessionExecuteRequest(
                command="trap 'echo got-term > /home/user/termed; exit 0' TERM; "
                "echo up > /home/user/up; sleep 300 & wait",
                run_async=True,
            ),
        )
        deadline = time.monotonic() + 30
        while sb.process.exec("cat /home/user/up 2>/dev/null").result != "up\n":
            assert time.monotonic() < deadline, "the session command did not start"
        sb.stop()
        sb.start()
        assert sb.process.exec("cat /home/user/termed").result == "got-term\n"
        # Sessions do not survive a restart; the sandbox starts clean.
        assert sb.process.list_sessions() == []
    finally:
        daytona.delete(sb)
