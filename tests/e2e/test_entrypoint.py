"""The entrypoint session: the reference page's example with an official SDK
`Image` (ENTRYPOINT, CMD, ENV, WORKDIR honoured), Cove's create field, and
what is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# No double quotes: the SDK writes CMD's JSON array without escaping them.
SCRIPT = "echo $GREETING from $(pwd); echo warn >&2; read -r _ || echo eof; sleep 1; echo done"


@pytest.fixture(scope="module")
def image_sandbox(daytona: Any) -> Iterator[Any]:
    from daytona import CreateSandboxFromImageParams, Image

    image = (
        Image.base("python:3.11-slim-bookworm")
        .env({"GREETING": "hello world"})
        .workdir("app")
        .entrypoint(["/bin/bash", "-c"])
        .cmd([SCRIPT])
    )
    sb = daytona.create(CreateSandboxFromImageParams(image=image))
    try:
        yield sb
    finally:
        daytona.delete(sb)


@pytest.mark.timeout(600)  # the first image of a fresh machine builds its Debian base
def test_entrypoint_example(image_sandbox: Any) -> None:
    sandbox = image_sandbox
    # Entrypoint session details
    session = sandbox.process.get_entrypoint_session()
    print(f"Entrypoint session: {session.session_id}")
    cmd = session.commands[0]
    print(f"Entrypoint command id: {cmd.id}")
    print(f"Command: {cmd.command}")
    assert session.session_id == "entrypoint"
    assert cmd.command.startswith("/bin/bash -c ")

    # Stream entrypoint logs (WebSocket): it ends when the entrypoint does.
    out: list[str] = []
    err: list[str] = []

    async def stream_entrypoint_logs() -> None:
        await sandbox.process.get_entrypoint_logs_async(
            lambda log: out.append(log),
            lambda log: err.append(log),
        )

    asyncio.run(asyncio.wait_for(stream_entrypoint_logs(), 30))
    assert "".join(out) == "hello world from /home/user/app\neof\ndone\n"
    assert "".join(err) == "warn\n"

    # Entrypoint logs (HTTP)
    logs = sandbox.process.get_entrypoint_logs()
    print(f"[STDOUT]: {logs.stdout}")
    print(f"[STDERR]: {logs.stderr}")
    assert logs.stdout == "hello world from /home/user/app\neof\ndone\n"
    assert logs.stderr == "warn\n"
    assert sandbox.process.get_entrypoint_session().commands[0].exit_code == 0


def test_image_env_and_workdir_reach_sessions(image_sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    sandbox = image_sandbox
    sandbox.process.create_session("after-image")
    try:
        r = sandbox.process.execute_session_command(
            "after-image", SessionExecuteRequest(command='echo "$GREETING|$(pwd)"')
        )
        assert r.stdout == "hello world|/home/user/app\n"
    finally:
        sandbox.process.delete_session("after-image")


def test_entrypoint_session_refuses_exec_input_and_delete(image_sandbox: Any) -> None:
    from daytona import DaytonaError, SessionExecuteRequest

    sandbox = image_sandbox
    cmd_id = sandbox.process.get_entrypoint_session().commands[0].id
    calls = [
        lambda: sandbox.process.execute_session_command(
            "entrypoint", SessionExecuteRequest(command="echo no")
        ),
        lambda: sandbox.process.send_session_command_input("entrypoint", cmd_id, "x\n"),
        lambda: sandbox.process.delete_session("entrypoint"),
        lambda: sandbox.process.create_session("entrypoint"),
    ]
    for call in calls:
        with pytest.raises(DaytonaError) as info:
            call()
        assert info.value.status_code == 400
        assert "entrypoint" in str(info.value)
    # Still there, and not listed among the user's sessions.
    assert sandbox.process.get_entrypoint_session().session_id == "entrypoint"
    assert all(s.session_id != "entrypoint" for s in sandbox.process.list_sessions())


def test_an_image_that_cannot_be_had_is_a_clear_error(daytona: Any) -> None:
    from daytona import CreateSandboxFromImageParams, DaytonaError, Image

    with pytest.raises(DaytonaError) as info:
        daytona.create(CreateSandboxFromImageParams(image=Image.debian_slim("3.12")))
    message = str(info.value)
    assert "build_failed" in message.lower() and "no base with Python 3.12" in message
    assert "python:3.11-slim (bookworm)" in message


@pytest.mark.timeout(300)
def test_cove_entrypoint_field_and_no_entrypoint(
    api: httpx.Client, sandbox: Any, server: Any
) -> None:
    from daytona import DaytonaNotFoundError

    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_entrypoint_session()

    # The entrypoint waits on a FIFO the test writes to once it has seen the
    # first line: that line must stream live (nothing here depends on timing).
    script = "mkfifo /home/user/go; echo via-field; read -r _ < /home/user/go; echo done"
    created = api.post("/api/sandbox", json={"entrypoint": ["sh", "-c", script], "labels": {}})
    assert created.status_code == 200, created.text
    sid = created.json()["id"]
    try:
        session = api.get(f"/toolbox/{sid}/process/session/entrypoint").json()
        assert session["commands"][0]["command"] == f"sh -c '{script}'"
        assert session["commands"][0]["exitCode"] is None
        # Follow live to the end: the first line arrives while the entrypoint
        # still runs, and the stream closes by itself once it has ended.
        from daytona import Daytona, DaytonaConfig

        sb = Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url)).get(sid)
        seen: list[str] = []
        running_at_first_line: list[bool] = []

        def on(log: str) -> None:
            if not seen:
                entry = api.get(f"/toolbox/{sid}/process/session/entrypoint").json()
                running_at_first_line.append(entry["commands"][0]["exitCode"] is None)
                go = {"command": "echo > /home/user/go", "timeout": 30}
                assert api.post(f"/toolbox/{sid}/process/execute", json=go).status_code == 200
            seen.append(log)

        asyncio.run(asyncio.wait_for(sb.process.get_entrypoint_logs_async(on, on), 30))
        assert running_at_first_line == [True]
        assert "".join(seen) == "via-field\ndone\n"
    finally:
        api.delete(f"/api/sandbox/{sid}")


@pytest.mark.parametrize(
    ("dockerfile", "command", "env", "workdir"),
    [
        # Exec-form ENTRYPOINT takes CMD as arguments; relative WORKDIRs join.
        (
            'FROM x\nWORKDIR /srv\nWORKDIR app\nENTRYPOINT ["python3"]\n'
            'CMD ["-m", "http.server"]\n',
            ["python3", "-m", "http.server"],
            {},
            "/srv/app",
        ),
        # Shell-form ENTRYPOINT ignores CMD; continuations and comments; legacy ENV.
        (
            'FROM x\n# comment\nENTRYPOINT echo hi \\\n  there\nCMD ["ignored"]\nENV A b c\n',
            ["/bin/sh", "-c", "echo hi there"],
            {"A": "b c"},
            None,
        ),
        # CMD alone; not-quite-JSON is shell form, as in Docker; ENV K=V with quoting.
        (
            'FROM x\nENV K=\'v w\' L=1\nCMD ["echo "a""]\n',
            ["/bin/sh", "-c", '["echo "a""]'],
            {"K": "v w", "L": "1"},
            None,
        ),
        ("FROM x\n", None, {}, None),
    ],
)
def test_dockerfile_parsing(
    dockerfile: str, command: list[str] | None, env: dict[str, str], workdir: str | None
) -> None:
    from cove.server.images import parse_dockerfile

    image = parse_dockerfile(dockerfile)
    assert (image.command(), image.env, image.workdir) == (command, env, workdir)
    assert image.base == "x"


def test_an_entrypoint_that_cannot_start_is_a_finished_command(api: httpx.Client) -> None:
    created = api.post("/api/sandbox", json={"entrypoint": ["/no/such/program"], "labels": {}})
    assert created.status_code == 200, created.text
    sid = created.json()["id"]
    try:
        session = api.get(f"/toolbox/{sid}/process/session/entrypoint").json()
        assert session["commands"][0]["exitCode"] == 127
        logs = api.get(f"/toolbox/{sid}/process/session/entrypoint/logs").json()
        assert "cannot start" in logs["stderr"] and "/no/such/program" in logs["stderr"]
        # The sandbox itself is fine.
        r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "echo ok"})
        assert r.json()["result"] == "ok\n"
    finally:
        api.delete(f"/api/sandbox/{sid}")
