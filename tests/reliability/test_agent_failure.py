"""The agent is what answers for a sandbox: its death is reported, not a bare 502,
and user code cannot bring it down."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import agent_pid, sandbox_pids, wait_for


def _state(api: httpx.Client, sandbox_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/api/sandbox/{sandbox_id}").json()
    return body


def test_a_dead_agent_is_an_error_with_a_reason_and_start_recovers(
    daytona: Any, api: httpx.Client
) -> None:
    sb = daytona.create()
    try:
        sb.process.exec("echo precious > keep.txt")
        os.kill(agent_pid(sb.id), signal.SIGKILL)
        failed = wait_for(
            lambda: (s := _state(api, sb.id))["state"] == "error" and s, 30, "state error"
        )
        assert "exited" in failed["errorReason"] and "SIGKILL" in failed["errorReason"]
        r = api.post(f"/toolbox/{sb.id}/process/execute", json={"command": "true"})
        assert r.status_code == 409
        assert "SIGKILL" in r.json()["message"]
        sb.start()
        assert _state(api, sb.id)["state"] == "started"
        assert sb.process.exec("cat keep.txt").result == "precious\n"
    finally:
        daytona.delete(sb)


def test_a_follower_is_told_when_the_agent_dies(
    daytona: Any, api: httpx.Client, server: Any
) -> None:
    """The relay closes with 1011 and a reason, not a bare connection drop."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    sb = daytona.create()
    try:
        base = f"/toolbox/{sb.id}/process/session/doomed"
        api.post(f"/toolbox/{sb.id}/process/session", json={"sessionId": "doomed"})
        cmd = api.post(
            f"{base}/exec", json={"command": "echo started; sleep 600", "runAsync": True}
        ).json()["cmdId"]
        url = f"ws://127.0.0.1:{server.port}{base}/command/{cmd}/logs?follow=true"
        headers = {"Authorization": f"Bearer {server.key}"}
        with connect(url, additional_headers=headers, open_timeout=20) as ws:
            assert b"started" in ws.recv(timeout=20)  # type: ignore[operator]
            os.kill(agent_pid(sb.id), signal.SIGKILL)
            try:
                while True:
                    ws.recv(timeout=20)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None
                assert (closed.rcvd.code, closed.rcvd.reason) == (1011, "sandbox agent went away")
    finally:
        daytona.delete(sb)


def _agent_answers(api: httpx.Client, sandbox_id: str) -> bool:
    r = api.get(f"/toolbox/{sandbox_id}/version", timeout=30)
    return r.status_code == 200


def _execute(api: httpx.Client, sandbox_id: str, command: str, **extra: Any) -> dict[str, Any]:
    r = api.post(
        f"/toolbox/{sandbox_id}/process/execute", json={"command": command, **extra}, timeout=60
    )
    body: dict[str, Any] = r.json()
    return body


class Bystander:
    """A session with a long-running command, to show that an attack spares it."""

    def __init__(self, api: httpx.Client, sandbox_id: str, name: str) -> None:
        self.api = api
        self.base = f"/toolbox/{sandbox_id}/process/session/{name}"
        api.post(f"/toolbox/{sandbox_id}/process/session", json={"sessionId": name})
        r = api.post(f"{self.base}/exec", json={"command": "sleep 600", "runAsync": True})
        self.cmd = r.json()["cmdId"]

    def still_running(self) -> bool:
        return self.api.get(f"{self.base}/command/{self.cmd}").json()["exitCode"] is None

    def usable(self) -> bool:
        r = self.api.post(f"{self.base}/exec", json={"command": "echo usable"})
        return r.status_code == 200 and r.json()["stdout"] == "usable\n"

    def close(self) -> None:
        self.api.delete(self.base)


@pytest.mark.timeout(300)
def test_a_fork_bomb_does_not_take_the_agent_down(api: httpx.Client, sandbox: Any) -> None:
    bystander = Bystander(api, sandbox.id, "fork-bystander")
    result: dict[str, Any] = {}
    command = "b() { b | b & }; b; sleep 60"
    bomb = threading.Thread(
        target=lambda: result.update(_execute(api, sandbox.id, command, timeout=15))
    )
    bomb.start()
    try:
        # Seen from the host: the bomb fills the sandbox's pids limit (512)...
        wait_for(lambda: len(sandbox_pids(sandbox.id)) >= 400, 30, "the bomb to fill the pids")
        # ...and the agent, outside the user cgroup, still answers.
        assert _agent_answers(api, sandbox.id)
    finally:
        bomb.join(30)
    assert result["timedOut"] is True
    # The timeout takes the whole tree (a bomb still forking takes a few kill passes).
    wait_for(lambda: len(sandbox_pids(sandbox.id)) < 10, 30, "the timeout to end the bomb")
    assert _execute(api, sandbox.id, "echo alive")["stdout"] == "alive\n"
    assert bystander.still_running() and bystander.usable()
    bystander.close()


def test_memory_exhaustion_kills_only_the_hog(api: httpx.Client, sandbox: Any) -> None:
    bystander = Bystander(api, sandbox.id, "oom-bystander")
    hog = _execute(
        api,
        sandbox.id,
        "python3 -c 'x = bytearray(3 * 1024**3); print(len(x))'",
        timeout=60,
    )
    assert hog["exitCode"] == 137, hog
    assert _agent_answers(api, sandbox.id)
    assert _execute(api, sandbox.id, "echo alive")["stdout"] == "alive\n"
    assert bystander.still_running() and bystander.usable()
    bystander.close()


def test_kill_minus_one_spares_the_agent(api: httpx.Client, sandbox: Any) -> None:
    bystander = Bystander(api, sandbox.id, "kill-bystander")
    # Its `sleep` exists before the kill (an async command may not have started yet:
    # a proof run under load killed before it, and the sleep ran on).
    wait_for(
        lambda: _execute(api, sandbox.id, "pgrep -x sleep")["exitCode"] == 0,
        30,
        "the bystander's sleep to start",
    )
    _execute(api, sandbox.id, "kill -9 -1")
    assert _agent_answers(api, sandbox.id)
    assert _execute(api, sandbox.id, "echo alive")["stdout"] == "alive\n"
    # Its command shared our uid and died with everything else; the session did not
    # (its end is recorded when the agent reaps it).
    wait_for(lambda: not bystander.still_running(), 30, "the bystander's command to end")
    assert bystander.usable()
    bystander.close()


def test_a_full_tmp_leaves_the_sandbox_usable(api: httpx.Client, sandbox: Any) -> None:
    bystander = Bystander(api, sandbox.id, "tmp-bystander")
    fill = _execute(api, sandbox.id, "dd if=/dev/zero of=/tmp/fill bs=1M count=4096", timeout=60)
    assert fill["exitCode"] != 0
    assert "No space left" in fill["stderr"]
    assert _agent_answers(api, sandbox.id)
    assert bystander.still_running() and bystander.usable()
    assert _execute(api, sandbox.id, "rm /tmp/fill && echo cleaned")["stdout"] == "cleaned\n"
    bystander.close()
