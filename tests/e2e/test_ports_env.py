"""The port API (the official toolbox client's `PortApi`: the SDK ships it
without a wrapper), the home and work dirs, and `sandbox.update_env`, with
the unmodified official SDK."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

# Binds, listens, then forks: exec returns once the port is listening, the
# child keeps it open (blocked in accept) until the sandbox goes.
LISTEN = (
    "python3 -c 'import os, socket; s = socket.socket(); "
    's.bind(("0.0.0.0", {port})); s.listen(); '
    "os.fork() and os._exit(0); os.setsid(); s.accept()' </dev/null >/dev/null 2>&1"
)


def port_api(sandbox: Any) -> Any:
    from daytona_toolbox_api_client import PortApi

    return PortApi(sandbox._toolbox_api)  # the SDK's own client for this sandbox


def test_listening_ports_and_in_use(sandbox: Any) -> None:
    ports = port_api(sandbox)
    assert 8741 not in (ports.get_ports().ports or [])
    assert ports.is_port_in_use(8741).is_in_use is False
    r = sandbox.process.exec(LISTEN.format(port=8741))
    assert r.exit_code == 0, r.result
    assert 8741 in (ports.get_ports().ports or [])
    assert ports.is_port_in_use(8741).is_in_use is True
    assert ports.is_port_in_use(8742).is_in_use is False


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_a_bad_port_is_a_400(sandbox: Any, api: httpx.Client, port: str) -> None:
    r = api.get(f"/toolbox/{sandbox.id}/port/{port}/in-use")
    assert r.status_code == 400, r.text
    assert "port must be a number from 1 to 65535" in r.json()["message"]


def test_home_and_work_dir(sandbox: Any) -> None:
    home = sandbox.get_user_home_dir()
    work = sandbox.get_work_dir()
    assert home.startswith("/") and work.startswith("/")
    assert sandbox.process.exec("echo $HOME").result.strip() == home
    assert sandbox.process.exec("pwd").result.strip() == work


def with_env(daytona: Any, env: dict[str, str]) -> Any:
    from daytona import CreateSandboxFromSnapshotParams

    return daytona.create(CreateSandboxFromSnapshotParams(env_vars=env))


def test_update_env_reaches_new_processes(daytona: Any) -> None:
    sb = with_env(daytona, {"KEEP": "kept", "OLD": "old"})
    try:
        sb.update_env({"NEW_VAR": "new value"}, unset=["OLD"])
        out = sb.process.exec('echo "$NEW_VAR|${OLD-unset}|$KEEP"').result.strip()
        assert out == "new value|unset|kept"
        session = "env-later"
        sb.process.create_session(session)
        from daytona import SessionExecuteRequest

        ran = sb.process.execute_session_command(
            session, SessionExecuteRequest(command="echo $NEW_VAR")
        )
        assert (ran.output or "").strip() == "new value"
        sb.process.delete_session(session)
    finally:
        daytona.delete(sb)


def test_update_env_unset_value_prefix_and_bad_names(daytona: Any, api: httpx.Client) -> None:
    sb = with_env(daytona, {"SECRET_A": "ph:1", "SECRET_B": "ph:2", "PLAIN": "x"})
    try:
        body = {"set": {"SECRET_B": "ph:3"}, "unsetValuePrefix": "ph:"}
        r = api.post(f"/toolbox/{sb.id}/env", json=body)
        assert r.status_code == 200, r.text
        out = sb.process.exec('echo "${SECRET_A-gone}|$SECRET_B|$PLAIN"').result.strip()
        assert out == "gone|ph:3|x"
        bad = api.post(f"/toolbox/{sb.id}/env", json={"set": {"A=B": "1"}})
        assert bad.status_code == 400 and "A=B" in bad.json()["message"]
    finally:
        daytona.delete(sb)


def test_git_calls_survive_an_env_that_hides_git_or_redirects_it(daytona: Any) -> None:
    """An env update is the user's own, but /git calls name their repository and
    find the installed git: a GIT_DIR or a PATH without /usr/bin changes neither."""
    sb = with_env(daytona, {})
    try:
        sb.git.init("real", initial_branch="main")
        sb.process.exec("git init -q decoy")
        sb.update_env({"PATH": "/nowhere", "GIT_DIR": f"{sb.get_work_dir()}/decoy/.git"})
        sb.fs.upload_file(b"x\n", "real/file.txt")
        sb.git.add("real", ["file.txt"])
        status = sb.git.status("real")
        assert [f.name for f in status.file_status] == ["file.txt"]
        assert status.current_branch == "main"
    finally:
        daytona.delete(sb)
