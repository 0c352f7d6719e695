"""PTY sessions over WebSocket (wire page §4.4), driven by the official SDK:
an interactive shell that is typed into, shared by two clients, resized and killed."""

from __future__ import annotations

import time
from typing import Any

import pytest


def read_until(handle: Any, marker: bytes, timeout: float = 15) -> bytes:
    """Read a PTY's output until `marker` shows up (bounded by `timeout`)."""
    seen = bytearray()
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        result = handle.wait(on_data=seen.extend, timeout=0.3)
        if result.exit_code is not None:
            break
    assert marker in seen, f"{marker!r} not in {bytes(seen)!r}"
    return bytes(seen)


def test_type_into_a_shell_and_read_the_answer(sandbox: Any) -> None:
    from daytona import PtySize

    handle = sandbox.process.create_pty_session(
        "shell-1", cwd="/tmp", envs={"GREET": "hi"}, pty_size=PtySize(cols=100, rows=30)
    )
    try:
        handle.send_input("echo $((6*7))-$GREET-$(pwd) $(tput cols)\n")
        # The typed line is echoed with the expression unexpanded; only the shell's answer has 42.
        read_until(handle, b"42-hi-/tmp 100")
        info = sandbox.process.get_pty_session_info("shell-1")
        assert (info.id, info.active, info.cols, info.rows) == ("shell-1", True, 100, 30)
        assert info.envs == {"GREET": "hi"} and info.cwd == "/tmp"
        assert any(s.id == "shell-1" for s in sandbox.process.list_pty_sessions())

        handle.resize(PtySize(cols=120, rows=40))
        handle.send_input("echo size=$(stty size)\n")
        read_until(handle, b"size=40 120")

        handle.send_input("exit 3\n")
        result = handle.wait(timeout=15)
        assert result.exit_code == 3
    finally:
        handle.disconnect()
    assert all(s.id != "shell-1" for s in sandbox.process.list_pty_sessions())


def test_two_clients_share_one_pty(sandbox: Any) -> None:
    first = sandbox.process.create_pty_session("shared")
    second = None
    try:
        first.send_input("export MARK=shared-$((20+1))\n")
        second = sandbox.process.connect_pty_session("shared")
        second.send_input("echo seen-by-both-$MARK\n")
        read_until(first, b"seen-by-both-shared-21")
        read_until(second, b"seen-by-both-shared-21")
        first.send_input("exit\n")
        assert first.wait(timeout=15).exit_code == 0
        assert second.wait(timeout=15).exit_code == 0
    finally:
        first.disconnect()
        if second is not None:
            second.disconnect()


def test_kill_ends_the_shell_and_what_it_started(sandbox: Any) -> None:
    handle = sandbox.process.create_pty_session("doomed")
    try:
        handle.send_input("setsid sleep 321 & echo started-$((1+1))\n")
        read_until(handle, b"started-2")
        handle.kill()
        result = handle.wait(timeout=15)
        assert result.exit_code == 137
    finally:
        handle.disconnect()
    left = sandbox.process.exec("ps -eo args | grep -c '[s]leep 321'").result.strip()
    assert left == "0"


def test_pty_errors(sandbox: Any) -> None:
    from daytona import DaytonaConflictError, DaytonaNotFoundError

    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_pty_session_info("no-such-pty")
    handle = sandbox.process.create_pty_session("taken")
    try:
        # Refused before the upgrade, so the SDK sees the status and types it.
        with pytest.raises(DaytonaConflictError):
            sandbox.process.create_pty_session("taken")
    finally:
        handle.kill()
        handle.disconnect()


def test_lazy_pty_created_over_rest_starts_on_first_connect(api: Any, sandbox: Any) -> None:
    base = f"/toolbox/{sandbox.id}/process/pty"
    r = api.post(base, json={"id": "lazy", "lazyStart": True, "envs": {"WHO": "lazy"}})
    assert r.status_code == 201 and r.json() == {"sessionId": "lazy"}
    info = api.get(f"{base}/lazy").json()
    assert info["active"] is False and info["lazyStart"] is True
    handle = sandbox.process.connect_pty_session("lazy")
    try:
        handle.send_input("echo $WHO-$((3*3))\n")
        read_until(handle, b"lazy-9")
        assert api.get(f"{base}/lazy").json()["active"] is True
        bad = api.post(f"{base}/lazy/resize", json={"cols": 0, "rows": 10})
        assert bad.status_code == 400
    finally:
        handle.kill()
        handle.disconnect()


def test_kill_sends_sigterm_first_and_sigkill_after_the_grace(sandbox: Any) -> None:
    """Like a session: SIGTERM to everything the shell started, then SIGKILL what is left."""
    handle = sandbox.process.create_pty_session("graceful")
    try:
        # A setsid'd process that notes SIGTERM, lives on through the grace, and
        # notes that too: only a later SIGKILL can end it.
        handle.send_input(
            "setsid bash -c 'trap \"echo TERM >> /tmp/pty-marks; sleep 0.2; "
            'echo survived >> /tmp/pty-marks" TERM; echo $$ > /tmp/pty-pid; '
            "echo armed-$((2+3)); while :; do sleep 100 & wait $!; done' &\n"
        )
        read_until(handle, b"armed-5")
        handle.kill()
        assert handle.wait(timeout=15).exit_code == 137
    finally:
        handle.disconnect()
    marks = sandbox.process.exec("cat /tmp/pty-marks").result.split()
    assert marks == ["TERM", "survived"]
    gone = sandbox.process.exec("kill -0 $(cat /tmp/pty-pid) 2>/dev/null || echo gone")
    assert gone.result.strip() == "gone"
