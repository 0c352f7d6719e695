"""Escape attempts from inside a sandbox: each one is denied.

The code runs as the sandbox's user through the toolbox, as an attacker would;
what it prints is checked here. Host-side canaries (files, listeners) are made
by the test, so a success would show as changed or reached canaries.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cgroupfiles import HOST, why_not
from tests.security.helpers import host_ip, python, run, sandbox_dir
from tests.serverproc import ServerProcess

PROBE = """
import json, os
def probe(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return type(e).__name__
"""


def _probe(api: httpx.Client, sid: str, code: str) -> dict[str, str]:
    out = python(api, sid, PROBE + code)
    assert out["exitCode"] == 0, out
    result: dict[str, str] = json.loads(out["stdout"].strip().splitlines()[-1])
    return result


def test_proc_paths_do_not_reach_the_host(api: httpx.Client, sandbox: Any) -> None:
    # PID 1 is the agent, non-dumpable: its /proc entries are closed to the user.
    got = _probe(
        api,
        sandbox.id,
        """
paths = ["/proc/1/root/etc", "/proc/1/cwd", "/proc/1/fd", "/proc/1/ns"]
r = {p: probe(lambda p=p: os.listdir(p)) for p in paths}
for p in ["/proc/1/environ", "/proc/1/mem", "/proc/1/root/etc/passwd", "/proc/kcore"]:
    r[p] = probe(lambda p=p: open(p, "rb").read(1))
for p in ["/proc/sysrq-trigger", "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches"]:
    r[p] = probe(lambda p=p: open(p, "w").write("1"))
print(json.dumps(r))
""",
    )
    assert all(v in ("PermissionError", "OSError", "FileNotFoundError") for v in got.values()), got


def test_host_files_are_not_reachable_through_any_proc_root(
    api: httpx.Client, sandbox: Any, tmp_path: Path
) -> None:
    canary = Path("/var/tmp") / f"cove-canary-{uuid.uuid4().hex}"
    canary.write_text("host secret\n")
    canary.chmod(0o644)  # world-readable on the host: only the mount namespace hides it
    try:
        got = _probe(
            api,
            sandbox.id,
            f"""
target = {str(canary)!r}
r = {{"direct": probe(lambda: open(target).read())}}
for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self", "thread-self"]:
    r[pid] = probe(lambda pid=pid: open(f"/proc/{{pid}}/root" + target).read())
r["shadow"] = probe(lambda: open("/etc/shadow").read())
print(json.dumps(r))
""",
        )
        assert "ok" not in got.values(), got
    finally:
        canary.unlink()


def test_control_dir_symlinks_do_not_make_the_host_write_or_chown(
    server: ServerProcess, api: httpx.Client, daytona: Any, tmp_path: Path
) -> None:
    """The control dir is writable inside; the host must not follow links planted there."""
    sb = daytona.create()
    canaries = {name: tmp_path / f"{name}.canary" for name in ("agent.json", "agent.log")}
    try:
        for path in canaries.values():
            path.write_text("untouched\n")
            path.chmod(0o600)
        links = "; ".join(
            f"rm -f /run/cove/{name}; ln -s {path} /run/cove/{name}"
            for name, path in canaries.items()
        )
        assert run(api, sb.id, links)["exitCode"] == 0
        sb.stop()
        sb.start()
        for path in canaries.values():
            assert path.read_text() == "untouched\n", path
            st = path.stat()
            assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), path
        assert sb.process.exec("echo alive").result == "alive\n"
        # A FIFO would block the host's open; a directory would fail its write.
        plant = "cd /run/cove && rm -f agent.log agent.json && mkfifo agent.log && mkdir agent.json"
        assert run(api, sb.id, plant)["exitCode"] == 0
        sb.stop()
        sb.start()
        assert sb.process.exec("echo alive").result == "alive\n"
    finally:
        daytona.delete(sb)
    for path in canaries.values():
        assert path.read_text() == "untouched\n"


def test_workspace_symlinks_out_are_not_followed_by_the_host(
    server: ServerProcess, api: httpx.Client, daytona: Any, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep\n")
    sb = daytona.create()
    try:
        cmd = f"ln -s {victim} ~/out && ln -s / ~/root && ls ~/out/ 2>&1; cat ~/root/etc/shadow"
        out = run(api, sb.id, cmd)
        assert "keep.txt" not in out["stdout"]
        assert out["exitCode"] != 0
    finally:
        daytona.delete(sb)  # the host removes the workspace: links must not be followed
    assert (victim / "keep.txt").read_text() == "keep\n"
    assert not sandbox_dir(server, sb.id).exists()


def test_ptrace_of_the_agent_and_the_host_is_denied(api: httpx.Client, sandbox: Any) -> None:
    got = _probe(
        api,
        sandbox.id,
        """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = {}
for pid in (1, os.getppid() if os.getppid() != 1 else 1):
    rc = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
    r[f"attach-{pid}"] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
    rc = libc.ptrace(0x4206, pid, None, None)  # PTRACE_SEIZE
    r[f"seize-{pid}"] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
print(json.dumps(r))
""",
    )
    assert set(got.values()) <= {"Operation not permitted", "No such process"}, got


def test_mount_is_denied(api: httpx.Client, sandbox: Any) -> None:
    got = _probe(
        api,
        sandbox.id,
        """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("/tmp/m", exist_ok=True)
r = {}
rc = libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None)
r["mount"] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
rc = libc.umount2(b"/proc", 2)  # MNT_DETACH
r["umount"] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
rc = libc.mount(None, b"/usr", None, 32 | 4096, None)  # MS_REMOUNT|MS_BIND: make /usr rw
r["remount"] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
print(json.dumps(r))
""",
    )
    assert "ok" not in got.values(), got
    out = run(api, sandbox.id, "mount -t tmpfs none /tmp 2>&1; echo rc=$?; touch /usr/x 2>&1")
    assert "rc=0" not in out["stdout"]
    assert "Read-only" in out["stdout"] or "denied" in out["stdout"]


def test_new_namespaces_are_denied(api: httpx.Client, sandbox: Any) -> None:
    got = _probe(
        api,
        sandbox.id,
        """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = {}
for name, flag in [("user", 0x10000000), ("mnt", 0x20000), ("net", 0x40000000),
                   ("pid", 0x20000000), ("cgroup", 0x02000000)]:
    rc = libc.unshare(flag)
    r[name] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
for ns in ("mnt", "user", "net", "pid"):
    def enter(ns=ns):
        fd = os.open(f"/proc/1/ns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
    r["setns-" + ns] = probe(enter)
print(json.dumps(r))
""",
    )
    assert "ok" not in got.values(), got
    out = run(
        api,
        sandbox.id,
        "unshare -Ur true 2>&1; echo rc=$?; unshare -n true 2>&1; echo rc=$?;"
        " if command -v bwrap >/dev/null; then bwrap --ro-bind / / true 2>&1; echo rc=$?; fi",
    )
    assert "rc=0" not in out["stdout"], out


def test_control_plane_port_is_unreachable(
    server: ServerProcess, api: httpx.Client, sandbox: Any
) -> None:
    targets = [("127.0.0.1", server.port)]
    if ip := host_ip():
        targets.append((ip, server.port))
    got = _probe(
        api,
        sandbox.id,
        f"""
import socket
r = {{}}
for host, port in {targets!r}:
    def connect(host=host, port=port):
        with socket.create_connection((host, port), timeout=3):
            pass
    r[f"{{host}}:{{port}}"] = probe(connect)
print(json.dumps(r))
""",
    )
    assert "ok" not in got.values(), got


def test_host_abstract_unix_sockets_are_unreachable(api: httpx.Client, sandbox: Any) -> None:
    name = f"\0cove-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(name)
        listener.listen()
        got = _probe(
            api,
            sandbox.id,
            f"""
import socket
def connect():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect({name!r})
print(json.dumps({{"abstract": probe(connect)}}))
""",
        )
    assert got["abstract"] != "ok", got


def test_another_sandboxes_agent_socket_is_unreachable(
    server: ServerProcess, api: httpx.Client, sandbox: Any, neighbour: Any
) -> None:
    theirs = sandbox_dir(server, neighbour.id)
    assert (theirs / "control" / "agent.sock").exists()
    got = _probe(
        api,
        sandbox.id,
        f"""
import socket
r = {{}}
def connect(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(path)
r["their-socket"] = probe(lambda: connect({str(theirs / "control" / "agent.sock")!r}))
r["their-home"] = probe(lambda: os.listdir({str(theirs / "home")!r}))
r["sandbox-root"] = probe(lambda: os.listdir({str(theirs.parent)!r}))
print(json.dumps(r))
""",
    )
    assert "ok" not in got.values(), got
    # Even a mount mistake would not be enough: the sandboxes run as different
    # host uids, and each one's directories are 0700.
    mine = sandbox_dir(server, sandbox.id)
    my_uid, their_uid = (d.joinpath("home").stat().st_uid for d in (mine, theirs))
    assert my_uid != their_uid and 0 not in (my_uid, their_uid)
    for sub in ("home", "control"):
        assert theirs.joinpath(sub).stat().st_mode & 0o077 == 0
    if os.geteuid() != 0:
        pytest.skip("acting as the sandbox's host uid needs root")
    as_me = ["setpriv", f"--reuid={my_uid}", f"--regid={my_uid}", "--clear-groups"]
    for target in (theirs / "control" / "agent.json", theirs / "home"):
        done = subprocess.run([*as_me, "ls", str(target)], capture_output=True, text=True)
        assert done.returncode != 0 and "Permission denied" in done.stderr, done


def test_user_code_cannot_lift_its_own_limits(api: httpx.Client, sandbox: Any) -> None:
    """The cgroup files bound in let the agent place commands; no limit file is writable,
    and no process can be moved out of the limited cgroups."""
    got = _probe(
        api,
        sandbox.id,
        """
limits = ("pids.max", "memory.limit_in_bytes", "memory.max", "memory.memsw.limit_in_bytes",
          "memory.high", "cpu.max", "cpu.cfs_quota_us", "cpu.shares")
r = {}
for root in ("/run/cove-cgroup", "/sys/fs/cgroup"):
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            if f in limits and os.access(path, os.W_OK):
                r[path] = probe(lambda path=path: open(path, "w").write("max"))
print(json.dumps(r))
""",
    )
    assert "ok" not in got.values(), got
    # Writing our own pid to every reachable procs file keeps us inside the limits.
    out = run(
        api,
        sandbox.id,
        "for f in $(find /run/cove-cgroup /sys/fs/cgroup -name '*procs' 2>/dev/null);"
        " do echo $$ > $f 2>/dev/null; done; cat /proc/self/cgroup",
    )
    cgroups = dict(line.split(":", 2)[1:] for line in out["stdout"].splitlines())
    # The user code's limited groups, seen from inside (its cgroup namespace).
    if HOST == "v1":
        assert cgroups["pids"] == "/user" and cgroups["memory"] == "/user", cgroups
    elif HOST == "v2":  # one tree: still under user/ (unexercised here: RELIABILITY.md)
        assert "/user" in cgroups[""] and "/agent" not in cgroups[""], cgroups
    else:
        pytest.skip(why_not("v1") or "no cgroups")


def test_a_planted_agent_socket_link_does_not_reach_another_sandbox(
    server: ServerProcess, api: httpx.Client, daytona: Any, neighbour: Any
) -> None:
    """The control dir is the sandbox's: replacing agent.sock with a link to a
    neighbour's socket must not make the control plane (root) talk to the neighbour."""
    neighbour.process.exec("echo neighbour-secret > ~/secret.txt")
    theirs = sandbox_dir(server, neighbour.id) / "control" / "agent.sock"
    sb = daytona.create()
    try:
        plant = f"rm -f /run/cove/agent.sock && ln -s {theirs} /run/cove/agent.sock"
        assert run(api, sb.id, plant)["exitCode"] == 0
        # New connections (a WebSocket, or HTTP once pooled ones are gone) go by path.
        for _ in range(3):
            r = api.post(
                f"/toolbox/{sb.id}/process/execute",
                json={"command": "cat ~/secret.txt 2>&1; echo; cat /proc/sys/kernel/hostname"},
                headers={"Connection": "close"},
            )
            assert "neighbour-secret" not in r.text, r.text
        # A WebSocket always opens a new connection to the agent.
        assert "neighbour-secret" not in _interpreter_output(
            server, api, sb.id, "print(open('/home/user/secret.txt').read())"
        )
    finally:
        daytona.delete(sb)
    assert neighbour.process.exec("cat ~/secret.txt").result == "neighbour-secret\n"


def _interpreter_output(server: ServerProcess, api: httpx.Client, sid: str, code: str) -> str:
    """What one interpreter run prints, or why it could not run."""
    from httpx_ws import HTTPXWSException, WebSocketDisconnect, connect_ws

    url = f"{server.url}/toolbox/{sid}/process/interpreter/execute"
    text = ""
    try:
        ws: Any
        with connect_ws(url, api) as ws:
            ws.send_text(json.dumps({"code": code, "timeout": 10}))
            while True:
                text += ws.receive_text(timeout=20)
    except WebSocketDisconnect:
        return text
    except HTTPXWSException as exc:
        return f"refused: {exc!r}"


def test_risky_kernel_interfaces_are_denied(api: httpx.Client, sandbox: Any) -> None:
    """Keyrings, bpf, perf, userfaultfd, io_uring and file handles: kernel surface
    with a history of privilege escalations, each refused by the seccomp filter."""
    got = _probe(
        api,
        sandbox.id,
        """
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
x86 = platform.machine() == "x86_64"
calls = {
    "keyctl": (250 if x86 else 219, 0, 0, 0),
    "add_key": (248 if x86 else 217, 0, 0, 0),
    "bpf": (321 if x86 else 280, 0, 0, 0),
    "perf_event_open": (298 if x86 else 241, 0, 0, 0),
    "userfaultfd": (323 if x86 else 282, 0, 0, 0),
    "io_uring_setup": (425, 8, ctypes.addressof(ctypes.create_string_buffer(120)), 0),
    "open_by_handle_at": (304 if x86 else 265, 0, 0, 0),
}
r = {}
for name, (nr, *args) in calls.items():
    rc = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    r[name] = "ok" if rc >= 0 else os.strerror(ctypes.get_errno())
print(json.dumps(r))
""",
    )
    assert set(got.values()) == {"Operation not permitted"}, got


FAKE_AGENT = """
import os, socket
path = "/run/cove/agent.sock"
os.rename(path, "/run/cove/moved.sock")
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen()
open("/home/user/planted", "w").close()
body = b'{"exitCode": 0, "result": "FAKE-AGENT"}'
head = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n"
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(head % len(body) + body)
    c.close()
"""


def test_user_code_cannot_stand_in_for_the_agent(server: ServerProcess, api: httpx.Client) -> None:
    """A socket of the sandbox's own uid in the agent's place (here bound by the
    entrypoint, before any toolbox call) is not taken for the agent."""
    r = api.post("/api/sandbox", json={"entrypoint": ["/usr/bin/python3", "-c", FAKE_AGENT]})
    sid = r.json()["id"]
    try:
        planted = sandbox_dir(server, sid) / "home" / "planted"
        deadline = time.monotonic() + 30
        while not planted.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded wait for the entrypoint to take the socket's place
        assert planted.exists()
        r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "echo real"})
        assert "FAKE-AGENT" not in r.text, r.text
        assert r.status_code == 409 and "replaced" in r.json()["message"], r.text
    finally:
        api.delete(f"/api/sandbox/{sid}")
