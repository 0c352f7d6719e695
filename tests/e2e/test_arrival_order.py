"""`result` (and a session command's `output`) holds stdout and stderr in the order
they were written. The writer makes the order unambiguous: after each write it
waits until the agent has read its pipe empty (FIONREAD), so every byte arrived
before the next one on the other stream was written."""

from __future__ import annotations

import shlex
import uuid
from typing import Any

import httpx

WRITER = r"""
import fcntl, os, struct, termios, time
def unread(fd):
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
for fd, text in [(1, "out1\n"), (2, "err1\n"), (1, "out2\n"), (2, "err2\n"), (1, "out3\n")]:
    os.write(fd, text.encode())
    while unread(fd):  # the agent has not read it yet
        time.sleep(0.001)
"""
ORDER = "out1\nerr1\nout2\nerr2\nout3\n"


def test_execute_and_code_run_keep_arrival_order(api: httpx.Client, sandbox: Any) -> None:
    command = f"python3 -c {shlex.quote(WRITER)}"
    r = api.post(f"/toolbox/{sandbox.id}/process/execute", json={"command": command})
    body = r.json()
    assert (body["stdout"], body["stderr"]) == ("out1\nout2\nout3\n", "err1\nerr2\n"), body
    assert body["result"] == ORDER
    r = api.post(f"/toolbox/{sandbox.id}/process/code-run", json={"code": WRITER})
    assert r.json()["result"] == ORDER, r.json()


def test_a_session_command_keeps_arrival_order(api: httpx.Client, sandbox: Any) -> None:
    sid = f"order-{uuid.uuid4().hex[:8]}"
    base = f"/toolbox/{sandbox.id}/process/session"
    assert api.post(base, json={"sessionId": sid}).status_code == 201
    try:
        command = f"python3 -c {shlex.quote(WRITER)}"
        done = api.post(f"{base}/{sid}/exec", json={"command": command}).json()
        assert done["output"] == ORDER, done
        logs = api.get(f"{base}/{sid}/command/{done['cmdId']}/logs").json()
        assert logs["output"] == ORDER, logs
    finally:
        api.delete(f"{base}/{sid}")
