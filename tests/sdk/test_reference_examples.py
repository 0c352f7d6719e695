"""Every example of the reference page, run through the sync Cove SDK with only
its import changed (`from cove import Cove as Daytona, ...`), against a real
server configured through COVE_API_URL / COVE_API_KEY."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def sandbox(server: ServerProcess) -> Any:
    from cove import Cove as Daytona

    with Daytona(api_url=server.api_url, api_key=server.key) as daytona:
        yield daytona.create()


def test_code_run_example(sandbox: Any) -> None:
    # Run Python code
    response = sandbox.process.code_run("""
def greet(name):
    return f"Hello, {name}!"
print(greet("Daytona"))
""")
    print(response.result)
    assert response.result == "Hello, Daytona!\n"
    assert response.exit_code == 0


def test_interpreter_example(cove_env: ServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    from cove import Cove as Daytona
    from cove import OutputMessage

    def handle_stdout(message: OutputMessage) -> None:
        print(f"[STDOUT] {message.output}")

    daytona = Daytona()
    sandbox = daytona.create()
    try:
        # Shared default context
        result = sandbox.code_interpreter.run_code(
            "counter = 1\nprint(f'Counter initialized at {counter}')",
            on_stdout=handle_stdout,
        )
        # Isolated context
        ctx = sandbox.code_interpreter.create_context()
        try:
            sandbox.code_interpreter.run_code(
                "value = 'stored in ctx'",
                context=ctx,
            )
            sandbox.code_interpreter.run_code(
                "print(value)",
                context=ctx,
                on_stdout=handle_stdout,
            )
        finally:
            sandbox.code_interpreter.delete_context(ctx)
    finally:
        daytona.close()
    out = capsys.readouterr().out
    assert result.stdout == "Counter initialized at 1\n" and result.error is None
    assert "[STDOUT] Counter initialized at 1" in out
    assert "[STDOUT] stored in ctx" in out


@pytest.mark.timeout(300)
def test_exec_examples(sandbox: Any) -> None:
    # Execute any shell command
    response = sandbox.process.exec("ls -la")
    print(response.result)
    assert response.exit_code == 0 and "total" in response.result
    # Setting a working directory and a timeout
    response = sandbox.process.exec("sleep 3", cwd="workspace/src", timeout=10)
    print(response.result)
    assert response.exit_code == 0
    # Passing environment variables
    response = sandbox.process.exec("echo $CUSTOM_SECRET", env={"CUSTOM_SECRET": "DAYTONA"})
    print(response.result)
    assert response.result == "DAYTONA\n"


def test_session_status_example(sandbox: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from cove import SessionExecuteRequest

    session_id = "status-session"
    sandbox.process.create_session(session_id)
    sandbox.process.execute_session_command(session_id, SessionExecuteRequest(command="true"))
    # Check session's executed commands
    session = sandbox.process.get_session(session_id)
    print(f"Session {session_id}:")
    for command in session.commands:
        print(f"Command: {command.command}, Exit Code: {command.exit_code}")
    # List all running sessions
    sessions = sandbox.process.list_sessions()
    for session in sessions:
        print(f"Session: {session.session_id}, Commands: {session.commands}")
    sandbox.process.delete_session(session_id)
    out = capsys.readouterr().out
    assert "Command: true, Exit Code: 0" in out
    assert f"Session: {session_id}, Commands: [" in out


def test_entrypoint_example(server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    from cove import Cove as Daytona

    with Daytona(api_url=server.api_url, api_key=server.key) as daytona:
        sandbox = daytona.create(entrypoint=["sh", "-c", "echo started; echo warming >&2"])
        # Entrypoint session details
        session = sandbox.process.get_entrypoint_session()
        print(f"Entrypoint session: {session.session_id}")
        cmd = session.commands[0]
        print(f"Entrypoint command id: {cmd.id}")
        print(f"Command: {cmd.command}")

        # Stream entrypoint logs (WebSocket): it ends when the entrypoint exits.
        async def stream_entrypoint_logs() -> None:
            await sandbox.process.get_entrypoint_logs_async(
                lambda log: print(f"[STDOUT]: {log}"),
                lambda log: print(f"[STDERR]: {log}"),
            )

        asyncio.run(stream_entrypoint_logs())
        # Entrypoint logs (HTTP)
        logs = sandbox.process.get_entrypoint_logs()
        print(f"[STDOUT]: {logs.stdout}")
        print(f"[STDERR]: {logs.stderr}")
    out = capsys.readouterr().out
    assert "Entrypoint session: entrypoint" in out
    assert (logs.stdout, logs.stderr) == ("started\n", "warming\n")
    assert out.count("[STDOUT]: started") == 2 and out.count("[STDERR]: warming") == 2


def test_interactive_example(sandbox: Any) -> None:
    from cove import SessionExecuteRequest

    # `pip uninstall` needs the network; a script that asks the same question does not.
    sandbox.process.exec(
        "printf '%s\\n' 'printf \"Proceed (Y/n)? \"' 'read -r -n 1 answer' "
        "'echo; echo \"answer=$answer\"' > /tmp/confirm.sh"
    )
    seen: list[str] = []

    async def main() -> None:
        session_id = "interactive-session"
        sandbox.process.create_session(session_id)
        # Execute command that requires confirmation
        command = sandbox.process.execute_session_command(
            session_id,
            SessionExecuteRequest(
                command="bash /tmp/confirm.sh",
                run_async=True,
            ),
        )
        prompted = asyncio.Event()

        def on_stdout(log: str) -> None:
            print(f"[STDOUT]: {log}")
            seen.append(log)
            if "Proceed" in "".join(seen):
                prompted.set()

        # Stream logs asynchronously
        logs_task = asyncio.create_task(
            sandbox.process.get_session_command_logs_async(
                session_id, command.cmd_id, on_stdout, lambda log: print(f"[STDERR]: {log}")
            )
        )
        await asyncio.wait_for(prompted.wait(), 20)  # the page sleeps 1 s here
        # Send input to the command
        sandbox.process.send_session_command_input(session_id, command.cmd_id, "y")
        # Wait for logs to complete
        await asyncio.wait_for(logs_task, 20)
        sandbox.process.delete_session(session_id)

    asyncio.run(main())
    assert "answer=y" in "".join(seen)


def test_cleanup_example(sandbox: Any) -> None:
    # Python - Clean up session
    session_id = "long-running-cmd"
    try:
        sandbox.process.create_session(session_id)
        session = sandbox.process.get_session(session_id)
        # Do work...
    finally:
        sandbox.process.delete_session(session.session_id)
    assert all(s.session_id != session_id for s in sandbox.process.list_sessions())


def test_error_handling_example(sandbox: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from cove import CoveError as DaytonaError

    try:
        response = sandbox.process.code_run("invalid python code")
        if response.exit_code != 0:
            print(f"Exit code: {response.exit_code}")
            print(f"Error output: {response.result}")
    except DaytonaError as e:
        print(f"Execution failed: {e}")
    out = capsys.readouterr().out
    assert "Exit code: 1" in out and "SyntaxError" in out
