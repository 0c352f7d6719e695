"""The reference page's examples through `AsyncCove` (Daytona's `AsyncDaytona`
shape: the same calls, awaited), against a real server. Each test runs its own
event loop with asyncio.run, as a script would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.serverproc import ServerProcess


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.timeout(300)
def test_stateless_examples(cove_env: ServerProcess) -> None:
    from cove import AsyncCove as AsyncDaytona
    from cove import CoveError as DaytonaError

    async def main() -> None:
        async with AsyncDaytona() as daytona:
            sandbox = await daytona.create()
            # Run Python code
            response = await sandbox.process.code_run("""
def greet(name):
    return f"Hello, {name}!"
print(greet("Daytona"))
""")
            assert response.result == "Hello, Daytona!\n"
            # Execute any shell command
            response = await sandbox.process.exec("ls -la")
            assert "total" in response.result
            # Setting a working directory and a timeout
            response = await sandbox.process.exec("sleep 3", cwd="workspace/src", timeout=10)
            assert response.exit_code == 0
            # Passing environment variables
            response = await sandbox.process.exec(
                "echo $CUSTOM_SECRET", env={"CUSTOM_SECRET": "DAYTONA"}
            )
            assert response.result == "DAYTONA\n"
            try:
                response = await sandbox.process.code_run("invalid python code")
                assert response.exit_code == 1 and "SyntaxError" in response.result
            except DaytonaError as e:
                pytest.fail(f"Execution failed: {e}")

    run(main())


def test_interpreter_example(cove_env: ServerProcess) -> None:
    from cove import AsyncCove as AsyncDaytona
    from cove import OutputMessage

    printed: list[str] = []

    async def handle_stdout(message: OutputMessage) -> None:  # async callbacks work too
        printed.append(message.output)

    async def main() -> None:
        async with AsyncDaytona() as daytona:
            sandbox = await daytona.create()
            # Shared default context
            result = await sandbox.code_interpreter.run_code(
                "counter = 1\nprint(f'Counter initialized at {counter}')",
                on_stdout=handle_stdout,
            )
            assert result.stdout == "Counter initialized at 1\n"
            # Isolated context
            ctx = await sandbox.code_interpreter.create_context()
            try:
                await sandbox.code_interpreter.run_code("value = 'stored in ctx'", context=ctx)
                await sandbox.code_interpreter.run_code(
                    "print(value)", context=ctx, on_stdout=handle_stdout
                )
                assert [c.id for c in await sandbox.code_interpreter.list_contexts()] == [ctx.id]
            finally:
                await sandbox.code_interpreter.delete_context(ctx)

    run(main())
    # Chunk boundaries are arbitrary: compare the text.
    assert "".join(printed) == "Counter initialized at 1\nstored in ctx\n"


def test_session_examples(cove_env: ServerProcess) -> None:
    from cove import AsyncCove as AsyncDaytona
    from cove import SessionExecuteRequest

    seen: list[str] = []

    async def main() -> None:
        async with AsyncDaytona() as daytona:
            sandbox = await daytona.create(entrypoint=["sh", "-c", "echo booted"])
            # Entrypoint session details and logs
            session = await sandbox.process.get_entrypoint_session()
            assert session.session_id == "entrypoint" and session.commands[0].id
            await sandbox.process.get_entrypoint_logs_async(seen.append, seen.append)
            assert (await sandbox.process.get_entrypoint_logs()).stdout == "booted\n"

            await sandbox.process.exec(
                "printf '%s\\n' 'printf \"Proceed (Y/n)? \"' 'read -r -n 1 answer' "
                "'echo; echo \"answer=$answer\"' > /tmp/confirm.sh"
            )
            session_id = "interactive-session"
            await sandbox.process.create_session(session_id)
            # Execute command that requires confirmation
            command = await sandbox.process.execute_session_command(
                session_id, SessionExecuteRequest(command="bash /tmp/confirm.sh", run_async=True)
            )
            prompted = asyncio.Event()

            def on_stdout(log: str) -> None:
                seen.append(log)
                if "Proceed" in "".join(seen):
                    prompted.set()

            # Stream logs asynchronously
            logs_task = asyncio.create_task(
                sandbox.process.get_session_command_logs_async(
                    session_id, command.cmd_id, on_stdout, seen.append
                )
            )
            await prompted.wait()
            # Send input to the command
            await sandbox.process.send_session_command_input(session_id, command.cmd_id, "y")
            # Wait for logs to complete
            await logs_task
            # Check session's executed commands; list all sessions
            session = await sandbox.process.get_session(session_id)
            assert [(c.command, c.exit_code) for c in session.commands] == [
                ("bash /tmp/confirm.sh", 0)
            ]
            sessions = await sandbox.process.list_sessions()
            assert [s.session_id for s in sessions] == [session_id]
            await sandbox.process.delete_session(session_id)

    run(main())
    text = "".join(seen)
    assert text.startswith("booted\n") and "answer=y" in text
