"""Session input reaches a `read` as a full line, as on Daytona: the reference
page's interactive example, unchanged, with the official SDK; and Cove's `raw`
field for programs that read characters."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

# A `requests` pip can uninstall: a distribution in the sandbox user's site
# directory (nothing is downloaded), and pip told it may change packages of
# Debian's Python (PEP 668 refuses otherwise).
FAKE_REQUESTS = r"""
set -e
site=$(python3 -m site --user-site)
mkdir -p "$site/requests" "$site/requests-2.0.0.dist-info" ~/.config/pip
: > "$site/requests/__init__.py"
cd "$site/requests-2.0.0.dist-info"
printf 'Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n' > METADATA
echo pip > INSTALLER
printf '%s\n' requests/__init__.py,, requests-2.0.0.dist-info/METADATA,, \
    requests-2.0.0.dist-info/INSTALLER,, requests-2.0.0.dist-info/RECORD,, > RECORD
printf '[global]\nbreak-system-packages = true\n' > ~/.config/pip/pip.conf
"""


def test_reference_interactive_example_unchanged(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    setup = sandbox.process.exec(FAKE_REQUESTS)
    assert setup.exit_code == 0, setup.result
    seen: list[str] = []

    def print(text: str) -> None:  # the example prints; the test records
        seen.append(text)

    async def example() -> None:
        # --- the reference page's example, as written ---
        session_id = "interactive-session"
        sandbox.process.create_session(session_id)
        # Execute command that requires confirmation
        command = sandbox.process.execute_session_command(
            session_id,
            SessionExecuteRequest(
                command="pip uninstall requests",
                run_async=True,
            ),
        )
        # Stream logs asynchronously
        logs_task = asyncio.create_task(
            sandbox.process.get_session_command_logs_async(
                session_id,
                command.cmd_id,
                lambda log: print(f"[STDOUT]: {log}"),
                lambda log: print(f"[STDERR]: {log}"),
            )
        )
        await asyncio.sleep(1)  # the page's; the input waits in the pipe either way
        # Send input to the command
        sandbox.process.send_session_command_input(session_id, command.cmd_id, "y")
        # Wait for logs to complete
        await logs_task
        # --- end of the example ---

    try:
        asyncio.run(asyncio.wait_for(example(), 60))
    finally:
        sandbox.process.delete_session("interactive-session")
    text = "".join(seen)
    assert "Proceed (Y/n)?" in text, text
    assert "Successfully uninstalled requests-2.0.0" in text, text
    gone = sandbox.process.exec("python3 -m pip show requests")
    assert gone.exit_code != 0


def test_input_gets_a_newline_unless_it_has_one(sandbox: Any, api: httpx.Client) -> None:
    from daytona import SessionExecuteRequest

    p = sandbox.process
    p.create_session("lines")
    try:
        cmd = p.execute_session_command(
            "lines",
            SessionExecuteRequest(command="od -c", run_async=True, suppress_input_echo=True),
        )
        p.send_session_command_input("lines", cmd.cmd_id, "a")
        p.send_session_command_input("lines", cmd.cmd_id, "b\n")
        p.send_session_command_input("lines", cmd.cmd_id, "")
        _close_stdin(api, sandbox, "lines", cmd.cmd_id)
        out: list[str] = []
        asyncio.run(
            asyncio.wait_for(
                p.get_session_command_logs_async("lines", cmd.cmd_id, out.append, out.append), 30
            )
        )
        # "a\n", "b\n" (not doubled), and an empty line.
        assert "".join(out).split() == ["0000000", "a", "\\n", "b", "\\n", "\\n", "0000005"]
    finally:
        p.delete_session("lines")


def test_raw_input_is_sent_unchanged(sandbox: Any, api: httpx.Client) -> None:
    from daytona import SessionExecuteRequest

    p = sandbox.process
    p.create_session("raw")
    try:
        cmd = p.execute_session_command(
            "raw", SessionExecuteRequest(command="wc -c", run_async=True, suppress_input_echo=True)
        )
        path = f"/toolbox/{sandbox.id}/process/session/raw/command/{cmd.cmd_id}/input"
        sent = api.post(path, json={"data": "abc", "raw": True})
        assert sent.status_code == 204, sent.text
        _close_stdin(api, sandbox, "raw", cmd.cmd_id)
        out: list[str] = []
        asyncio.run(
            asyncio.wait_for(
                p.get_session_command_logs_async("raw", cmd.cmd_id, out.append, out.append), 30
            )
        )
        assert "".join(out).strip() == "3"
    finally:
        p.delete_session("raw")


def _close_stdin(api: httpx.Client, sandbox: Any, session: str, cmd_id: str) -> None:
    """Cove's stdin close (the official SDK has none), so the reader sees EOF."""
    path = f"/toolbox/{sandbox.id}/process/session/{session}/command/{cmd_id}/stdin/close"
    closed = api.post(path)
    assert closed.status_code == 200, closed.text
