"""The reference page's session examples, run by the official SDK unchanged
but for configuration, and the wire contract of sessions (wire page §4.1, §4.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def test_session_example_state_carries_across_commands(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    session_id = "my-session"
    sandbox.process.create_session(session_id)
    try:
        sandbox.process.execute_session_command(
            session_id, SessionExecuteRequest(command="mkdir -p /tmp/ws && cd /tmp/ws")
        )
        sandbox.process.execute_session_command(
            session_id, SessionExecuteRequest(command="export GREETING=Hello")
        )
        sandbox.process.execute_session_command(
            session_id, SessionExecuteRequest(command='echo "$GREETING" > test.txt')
        )
        result = sandbox.process.execute_session_command(
            session_id, SessionExecuteRequest(command="cat test.txt; pwd; echo err >&2")
        )
        assert result.exit_code == 0
        assert result.stdout == "Hello\n/tmp/ws\n"
        assert result.stderr == "err\n"
        assert sorted(result.output.splitlines()) == ["/tmp/ws", "Hello", "err"]

        # Check session's executed commands
        session = sandbox.process.get_session(session_id)
        assert session.session_id == session_id
        assert [c.exit_code for c in session.commands] == [0, 0, 0, 0]
        assert session.commands[1].command == "export GREETING=Hello"
        assert any(s.session_id == session_id for s in sandbox.process.list_sessions())
        logs = sandbox.process.get_session_command_logs(session_id, result.cmd_id)
        assert (logs.stdout, logs.stderr) == ("Hello\n/tmp/ws\n", "err\n")
    finally:
        sandbox.process.delete_session(session_id)
    assert all(s.session_id != session_id for s in sandbox.process.list_sessions())


def test_exit_and_set_e_end_only_that_command(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    sandbox.process.create_session("exits")
    try:
        run = sandbox.process.execute_session_command
        run("exits", SessionExecuteRequest(command="export KEPT=1; cd /tmp"))
        assert run("exits", SessionExecuteRequest(command="echo a; exit 3")).exit_code == 3
        failed = run(
            "exits", SessionExecuteRequest(command="set -e; export LATE=2; false; echo no")
        )
        assert failed.exit_code == 1 and failed.stdout == ""
        after = run("exits", SessionExecuteRequest(command='echo "$KEPT $LATE $(pwd)"'))
        assert after.stdout == "1 2 /tmp\n"
        unset = run("exits", SessionExecuteRequest(command="unset KEPT"))
        assert unset.exit_code == 0
        assert run("exits", SessionExecuteRequest(command='echo "[$KEPT]"')).stdout == "[]\n"
    finally:
        sandbox.process.delete_session("exits")


def test_async_command_and_live_logs(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    sandbox.process.create_session("live")
    try:
        cmd = sandbox.process.execute_session_command(
            "live",
            SessionExecuteRequest(
                command="for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.2; done",
                run_async=True,
            ),
        )
        assert cmd.cmd_id and cmd.exit_code is None
        out: list[str] = []
        err: list[str] = []
        asyncio.run(
            asyncio.wait_for(
                sandbox.process.get_session_command_logs_async(
                    "live", cmd.cmd_id, out.append, err.append
                ),
                30,
            )
        )
        assert "".join(out) == "out1\nout2\nout3\n"
        assert "".join(err) == "err1\nerr2\nerr3\n"
        # The stream ended with the command: its exit code is already recorded.
        assert sandbox.process.get_session_command("live", cmd.cmd_id).exit_code == 0
        # A second follower after the end replays everything and ends at once.
        again: list[str] = []
        asyncio.run(
            sandbox.process.get_session_command_logs_async(
                "live", cmd.cmd_id, again.append, again.append
            )
        )
        assert sorted("".join(again).splitlines()) == sorted(
            ["out1", "out2", "out3", "err1", "err2", "err3"]
        )
    finally:
        sandbox.process.delete_session("live")


def test_interactive_input_example(sandbox: Any) -> None:
    """The reference's `pip uninstall requests` flow, with a script that asks y/n."""
    from daytona import SessionExecuteRequest

    sandbox.process.exec(
        "printf '%s\\n' 'printf \"Proceed (Y/n)? \"' 'read -r -n 1 answer' "
        "'echo; echo \"answer=$answer\"' > /tmp/confirm.sh"
    )

    async def main() -> list[str]:
        session_id = "interactive-session"
        sandbox.process.create_session(session_id)
        # Execute command that requires confirmation
        command = sandbox.process.execute_session_command(
            session_id,
            SessionExecuteRequest(command="bash /tmp/confirm.sh", run_async=True),
        )
        seen: list[str] = []
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
        await asyncio.wait_for(prompted.wait(), 20)
        # Send input to the command
        sandbox.process.send_session_command_input(session_id, command.cmd_id, "y")
        # Wait for logs to complete
        await asyncio.wait_for(logs_task, 20)
        return seen

    seen = asyncio.run(main())
    text = "".join(seen)
    # The input is echoed into the log right after the prompt (suppressInputEcho
    # was not set); the script's own output then ends the line and answers.
    # (Only the echo can put "y" right after the prompt.)
    assert text.startswith("Proceed (Y/n)? y") and text.endswith("\nanswer=y\n"), text
    sandbox.process.delete_session("interactive-session")


def test_cleanup_example(sandbox: Any) -> None:
    session_id = "long-running-cmd"
    session = None
    try:
        sandbox.process.create_session(session_id)
        session = sandbox.process.get_session(session_id)
        assert session.commands == []
    finally:
        assert session is not None
        sandbox.process.delete_session(session.session_id)


def test_errors_bad_duplicate_unknown(sandbox: Any) -> None:
    from daytona import DaytonaConflictError, DaytonaError, DaytonaNotFoundError

    with pytest.raises(DaytonaError) as bad:
        sandbox.process.create_session("no/slashes allowed")
    assert bad.value.status_code == 400
    sandbox.process.create_session("dup")
    try:
        with pytest.raises(DaytonaConflictError):
            sandbox.process.create_session("dup")
    finally:
        sandbox.process.delete_session("dup")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_session("never-created")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.delete_session("never-created")


def test_input_after_exit_is_gone(sandbox: Any) -> None:
    from daytona import DaytonaError, SessionExecuteRequest

    sandbox.process.create_session("gone")
    try:
        cmd = sandbox.process.execute_session_command(
            "gone", SessionExecuteRequest(command="true", run_async=True)
        )
        asyncio.run(
            sandbox.process.get_session_command_logs_async("gone", cmd.cmd_id, print, print)
        )
        with pytest.raises(DaytonaError) as info:
            sandbox.process.send_session_command_input("gone", cmd.cmd_id, "late\n")
        assert info.value.status_code == 410
    finally:
        sandbox.process.delete_session("gone")
