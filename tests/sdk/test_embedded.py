"""Embedded mode: no server running, no URL configured; `Cove()` brings up its
own control plane. The reference examples run as a script in a fresh process
with a temporary cache directory (never the real ~/.cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import asyncio
    from cove import Cove as Daytona, OutputMessage, SessionExecuteRequest
    from cove import CoveError as DaytonaError

    def handle_stdout(message: OutputMessage):
        print(f"[STDOUT] {message.output}", end="")

    with Daytona() as daytona:
        assert daytona.embedded is not None
        sandbox = daytona.create()
        # Nagle's algorithm meeting delayed ACKs costs 40 ms a call: every
        # connection the embedded server holds must have TCP_NODELAY set.
        import socket
        from cove.sdk import embedded
        daytona.get(sandbox.id)
        (running,) = embedded._servers.values()
        nodelay = {
            conn.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            for conn in running._uv.server_state.connections
        }
        print(f"NODELAY {sorted(nodelay)}")
        response = sandbox.process.code_run(\'\'\'
    def greet(name):
        return f"Hello, {name}!"
    print(greet("Daytona"))
    \'\'\')
        print(response.result, end="")
        response = sandbox.process.exec("echo $CUSTOM_SECRET", env={"CUSTOM_SECRET": "DAYTONA"})
        print(response.result, end="")
        sandbox.process.exec("sleep 1", cwd="workspace/src", timeout=5)
        result = sandbox.code_interpreter.run_code(
            "counter = 1\\nprint(f'Counter initialized at {counter}')", on_stdout=handle_stdout
        )
        ctx = sandbox.code_interpreter.create_context()
        try:
            sandbox.code_interpreter.run_code("value = 'stored in ctx'", context=ctx)
            sandbox.code_interpreter.run_code("print(value)", context=ctx, on_stdout=handle_stdout)
        finally:
            sandbox.code_interpreter.delete_context(ctx)
        session_id = "long-running-cmd"
        try:
            sandbox.process.create_session(session_id)
            command = sandbox.process.execute_session_command(
                session_id, SessionExecuteRequest(command="echo from-session", run_async=True)
            )
            asyncio.run(sandbox.process.get_session_command_logs_async(
                session_id, command.cmd_id, lambda log: print(f"[LOG] {log}", end=""), print
            ))
            session = sandbox.process.get_session(session_id)
            for command in session.commands:
                print(f"Command: {command.command}, Exit Code: {command.exit_code}")
            for session in sandbox.process.list_sessions():
                print(f"Session: {session.session_id}")
        finally:
            sandbox.process.delete_session(session.session_id)
        # Interactive input: answer a prompt through stdin.
        sandbox.process.create_session("interactive-session")
        command = sandbox.process.execute_session_command(
            "interactive-session",
            SessionExecuteRequest(command="read -r a; echo got=$a", run_async=True),
        )
        sandbox.process.send_session_command_input("interactive-session", command.cmd_id, "y\\n")
        asyncio.run(sandbox.process.get_session_command_logs_async(
            "interactive-session", command.cmd_id, lambda log: print(log, end=""), print
        ))
        # Entrypoint session and its logs.
        booted = daytona.create(entrypoint=["echo", "entry-ran"])
        session = booted.process.get_entrypoint_session()
        print(f"Entrypoint session: {session.session_id} {session.commands[0].command}")
        asyncio.run(booted.process.get_entrypoint_logs_async(
            lambda log: print(f"[EP] {log}", end=""), print
        ))
        print(f"[EP-HTTP] {booted.process.get_entrypoint_logs().stdout}", end="")
        try:
            response = sandbox.process.code_run("invalid python code")
            if response.exit_code != 0:
                print(f"Exit code: {response.exit_code}")
        except DaytonaError as e:
            print(f"Execution failed: {e}")
        kept = Daytona(keep=True).create(name="kept-one")
        print("KEPT", kept.id)

    async def async_face():
        from cove import AsyncCove
        async with AsyncCove() as c:
            sb = await c.create(language="javascript")
            print((await sb.process.code_run("console.log('from-async')")).result, end="")

    asyncio.run(async_face())
    # Never closed: cleaned up at interpreter exit, as its control plane ends too.
    Daytona().create(name="left-open")
""")


def _run(code: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90
    )


@pytest.mark.timeout(300)
def test_reference_examples_run_embedded_and_clean_up(tmp_path: Path) -> None:
    done = _run(SCRIPT, tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Hello, Daytona!\nDAYTONA\n" in out
    assert "[STDOUT] Counter initialized at 1\n[STDOUT] stored in ctx\n" in out
    assert "[LOG] from-session\n" in out and "Exit code: 1\n" in out
    assert "from-async\n" in out
    assert "Command: echo from-session, Exit Code: 0\nSession: long-running-cmd\n" in out
    assert "got=y\n" in out and "Entrypoint session: entrypoint" in out
    assert "[EP] entry-ran\n[EP-HTTP] entry-ran\n" in out
    assert (tmp_path / "cove" / "cove.db").exists()
    kept_id = out.split("KEPT ")[1].strip()
    assert "NODELAY [1]\n" in out

    # The `with` block deleted its sandbox; the keep=True client's survived its
    # process and is found again by the next embedded control plane.
    check = _run(
        "from cove import Cove\n"
        "with Cove() as c:\n"
        "    names = [s.name for s in c.list()]\n"
        "    print(names)\n"
        "    sb = c.get('kept-one')\n"
        "    print(sb.process.exec('echo alive').result, end='')\n"
        "    c.delete(sb)\n"
        "    print(len(c.list()))\n",
        tmp_path,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout == "['kept-one']\nalive\n0\n"
    assert kept_id


def test_embedded_needs_root_and_says_so(tmp_path: Path) -> None:
    code = (
        "import os\n"
        "from cove.sdk import Cove, CoveError\n"  # before: this python is unreadable to others
        "os.setuid(65534)\n"
        "try:\n"
        "    Cove(data_dir='/tmp')\n"
        "except CoveError as e:\n"
        "    print(e)\n"
    )
    done = _run(code, tmp_path)
    assert "needs root" in done.stdout and "COVE_API_URL" in done.stdout, done.stderr
