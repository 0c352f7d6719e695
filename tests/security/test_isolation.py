"""Isolation inside real sandboxes: what the host and the neighbours keep to themselves,
and limits that stop one process without taking the sandbox down."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.helpers import host_ip, python, run, sandbox_dir
from tests.serverproc import ServerProcess


def test_host_processes_are_invisible(api: httpx.Client, sandbox: Any) -> None:
    out = python(
        api,
        sandbox.id,
        """
import json, os
procs = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            procs[pid] = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError as e:
            procs[pid] = type(e).__name__
print(json.dumps(procs))
""",
    )
    procs: dict[str, str] = json.loads(out["stdout"])
    # The agent (PID 1, its cmdline closed to the user), this command and its shell.
    assert len(procs) <= 8, procs
    text = " ".join(procs.values())
    for host_only in ("uvicorn", "cove serve", "pytest", "systemd", "sshd", "bwrap"):
        assert host_only not in text, procs


def test_a_0600_file_under_root_is_unreadable(api: httpx.Client, sandbox: Any) -> None:
    secret = Path("/root") / f"cove-isolation-{uuid.uuid4().hex}"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    try:
        out = run(
            api,
            sandbox.id,
            f"cat {secret} /proc/1/root{secret} 2>&1; ls -la /root 2>&1; echo; id",
        )
        assert "root only" not in out["stdout"]
        assert "uid=1000" in out["stdout"]
    finally:
        secret.unlink()


def test_a_sibling_sandboxes_workspace_is_unreadable(
    server: ServerProcess, api: httpx.Client, sandbox: Any, neighbour: Any
) -> None:
    neighbour.process.exec("echo neighbour-secret > ~/secret.txt && chmod 644 ~/secret.txt")
    theirs = sandbox_dir(server, neighbour.id) / "home"
    assert (theirs / "secret.txt").read_text() == "neighbour-secret\n"
    out = run(
        api,
        sandbox.id,
        f"cat {theirs}/secret.txt 2>&1; find / -name secret.txt -xdev 2>/dev/null; "
        f"grep -rs neighbour-secret /home /tmp /run /var 2>/dev/null; echo done",
    )
    assert "neighbour-secret" not in out["stdout"]
    assert out["stdout"].strip().endswith("done")


def test_a_host_listener_on_loopback_is_unreachable(api: httpx.Client, sandbox: Any) -> None:
    listeners = []
    for addr in ["127.0.0.1", host_ip()]:
        if addr is None:
            continue
        s = socket.socket()
        s.bind((addr, 0))
        s.listen()
        s.settimeout(0.5)
        listeners.append(s)
    targets = [sock.getsockname() for sock in listeners]
    accepted: list[Any] = []
    try:
        out = python(
            api,
            sandbox.id,
            f"""
import json, socket
r = {{}}
for host, port in {targets!r}:
    try:
        socket.create_connection((host, port), timeout=3).close()
        r[f"{{host}}:{{port}}"] = "connected"
    except OSError as e:
        r[f"{{host}}:{{port}}"] = type(e).__name__
print(json.dumps(r))
""",
        )
        for sock in listeners:
            with contextlib.suppress(TimeoutError):
                accepted.append(sock.accept()[0])
    finally:
        for sock in listeners + accepted:
            sock.close()
    got = json.loads(out["stdout"])
    assert "connected" not in got.values(), got
    assert not accepted


def test_allocating_past_the_memory_limit_kills_only_that_process(
    api: httpx.Client, sandbox: Any
) -> None:
    # 1 GiB is the default limit; grow by 64 MiB (touched) until something gives.
    hog = (
        "a = []\n"
        "while True:\n"
        "    a.append(bytearray(64 << 20))\n"
        "    print(len(a) * 64, flush=True)\n"
    )
    out = python(api, sandbox.id, hog, timeout=60)
    assert out["timedOut"] is False and out["exitCode"] != 0, out  # killed by the limit
    reached = int(out["stdout"].split()[-1]) if out["stdout"].split() else 0
    assert 0 < reached <= 1024 + 64, out["stdout"][-200:]
    # The sandbox answers and remembers its files.
    assert sandbox.process.exec("echo still-here").result == "still-here\n"
    r = api.get(f"/api/sandbox/{sandbox.id}")
    assert r.json()["state"] == "started"


@pytest.mark.timeout(300)
def test_a_fork_storm_is_capped_and_the_sandbox_still_answers(
    api: httpx.Client, sandbox: Any
) -> None:
    storm = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 100000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(120)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('capped', n, e.errno, flush=True)\n"
        "time.sleep(120)\n"
    )
    result: dict[str, Any] = {}

    def run_storm() -> None:
        # The exec's timeout freezes and kills its whole cgroup afterwards.
        result.update(python(api, sandbox.id, storm, timeout=10))

    thread = threading.Thread(target=run_storm)
    thread.start()
    try:
        # During the storm the agent answers (it is outside the user pids limit).
        answered = 0
        with httpx.Client(
            base_url=str(api.base_url), headers=dict(api.headers), timeout=10
        ) as client:
            deadline = time.monotonic() + 8
            while thread.is_alive() and time.monotonic() < deadline:
                assert client.get(f"/toolbox/{sandbox.id}/version").status_code == 200
                answered += 1
                thread.join(0.2)
        assert answered > 0
    finally:
        thread.join(60)
    assert "capped" in result.get("stdout", ""), result
    capped = int(result["stdout"].split()[1])
    assert capped < 600, result["stdout"]
    # Afterwards the whole storm goes (hundreds of SIGKILLed processes take a
    # moment to exit on a loaded host: waited for, with a deadline) and
    # commands run again.
    deadline = time.monotonic() + 60
    while True:
        out = run(api, sandbox.id, "echo after; ls /proc | grep -c '^[0-9]'")
        assert out["stdout"].startswith("after\n"), out
        left = int(out["stdout"].split()[1])
        if left < 10 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left < 10, out


def test_the_user_is_not_root_and_has_no_capabilities(api: httpx.Client, sandbox: Any) -> None:
    status_lines = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status"
    out = run(api, sandbox.id, f"id -u; id -g; {status_lines}")
    lines = out["stdout"].split("\n")
    assert lines[0] == "1000" and lines[1] == "1000", out
    status = dict(line.split(":\t") for line in lines[2:] if ":\t" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[cap], 16) == 0, status
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] != "0"
    # setuid binaries give nothing either (no_new_privs).
    out = run(api, sandbox.id, "su -c id root </dev/null 2>&1; sudo -n id 2>&1; echo end")
    assert "uid=0" not in out["stdout"]
