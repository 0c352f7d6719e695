"""The `cove` command, run for real in a subprocess against a real server (and
once embedded, with no server), configured by the same environment as the SDK."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.cli import commands
from cove.cli.terminal import progress
from cove.sdk import Cove, SessionExecuteRequest
from tests.serverproc import COVE, ServerProcess


def cove_cmd(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COVE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    return {**clean, "COVE_API_URL": server.api_url, "COVE_API_KEY": server.key}


@pytest.fixture(scope="module")
def sandbox_id(env: dict[str, str]) -> Iterator[str]:
    made = cove_cmd("create", "--json", "-e", "GREETING=hi", env=env)
    assert made.returncode == 0, made.stderr
    sid = json.loads(made.stdout)["id"]
    yield sid
    cove_cmd("delete", sid, env=env)


@pytest.mark.parametrize(
    "command",
    ["", "serve", "create", "list", "nodes", "delete", "exec", "run", "logs", "shell", "preview"],
)
def test_help_everywhere(command: str) -> None:
    done = subprocess.run([COVE, *([command] if command else []), "--help"], capture_output=True)
    assert done.returncode == 0 and b"usage: cove" in done.stdout


@pytest.mark.timeout(300)
def test_create_list_delete(env: dict[str, str]) -> None:
    made = cove_cmd("create", "--name", "cli-made", "--language", "javascript", env=env)
    assert made.returncode == 0, made.stderr
    sid = made.stdout.strip()
    listed = json.loads(cove_cmd("list", "--json", env=env).stdout)
    mine = [s for s in listed if s["id"] == sid]
    assert mine and mine[0]["name"] == "cli-made" and mine[0]["language"] == "javascript"
    table = cove_cmd("list", env=env).stdout
    assert table.startswith("ID ") and "cli-made" in table
    assert cove_cmd("delete", "cli-made", env=env).returncode == 0
    assert sid not in cove_cmd("list", env=env).stdout


def test_exec_streams_and_exits_with_the_commands_code(
    env: dict[str, str], sandbox_id: str
) -> None:
    done = cove_cmd("exec", sandbox_id, "--", "echo $GREETING; echo oops >&2; exit 7", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (7, "hi\n", "oops\n")
    code = "import sys; print(sys.argv)"
    argv = cove_cmd("exec", sandbox_id, "--", "python3", "-c", code, "a b", env=env)
    assert argv.stdout == "['-c', 'a b']\n" and argv.returncode == 0
    piped = cove_cmd("exec", "-i", sandbox_id, "--", "wc -c", env=env, stdin="hello\n")
    assert piped.stdout.strip() == "6"


def foreground_sigint() -> None:
    """SIGINT as a terminal's foreground job has it. A test run started in a
    shell's background (`make test &`) ignores SIGINT, every child inherits
    that, and Python then installs no KeyboardInterrupt handler: Ctrl-C would
    be tested on a process that was told to ignore it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_exec_stdin_is_closed_without_i_and_ctrl_c_kills_the_command(
    env: dict[str, str], sandbox_id: str
) -> None:
    assert cove_cmd("exec", sandbox_id, "--", "cat; echo eof", env=env).stdout == "eof\n"
    proc = subprocess.Popen(
        [COVE, "exec", sandbox_id, "--", "echo started; sleep 60; echo never"],
        env=env, stdout=subprocess.PIPE, text=True, preexec_fn=foreground_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "never" not in rest
    left = cove_cmd("exec", sandbox_id, "--", "ps -eo args | grep -c '[s]leep 60'", env=env)
    assert left.stdout == "0\n"


@pytest.mark.timeout(300)
def test_exec_json_and_timeout(env: dict[str, str], sandbox_id: str) -> None:
    slow = "echo x; sleep 30"
    done = cove_cmd("exec", "--json", "--timeout", "1", sandbox_id, "--", slow, env=env)
    body = json.loads(done.stdout)
    assert done.returncode == 137 and body["timedOut"] is True and body["stdout"] == "x\n"
    streamed = cove_cmd("exec", "--timeout", "1", sandbox_id, "--", "echo y; sleep 30", env=env)
    assert streamed.returncode == 137 and streamed.stdout == "y\n"
    assert "timed out" in streamed.stderr


def test_run_takes_the_language_from_the_extension(
    env: dict[str, str], sandbox_id: str, tmp_path: Path
) -> None:
    script = tmp_path / "prog.py"
    script.write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(3)\n")
    done = cove_cmd("run", str(script), "a", "b", env=env)
    assert (done.returncode, done.stdout) == (3, "args ['a', 'b']\n")
    js = tmp_path / "prog.ts"
    js.write_text("const n: number = 2; console.log(n * 21)")
    there = cove_cmd("run", "--sandbox", sandbox_id, "--json", str(js), env=env)
    assert json.loads(there.stdout)["stdout"] == "42\n" and there.returncode == 0
    unknown = cove_cmd("run", str(tmp_path / "x.unknown"), env=env)
    assert unknown.returncode == 2 and "--language" in unknown.stderr


def test_logs_follow(env: dict[str, str], server: ServerProcess, sandbox_id: str) -> None:
    with Cove(api_url=server.api_url, api_key=server.key, keep=True) as c:
        p = c.get(sandbox_id).process
        p.create_session("cli-logs")
        cmd = p.execute_session_command(
            "cli-logs", SessionExecuteRequest("echo one; read line; echo $line", run_async=True)
        )
        follower = subprocess.Popen(
            [COVE, "logs", sandbox_id, "cli-logs", cmd.cmd_id, "--follow"],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert follower.stdout is not None
        assert follower.stdout.readline() == "one\n"  # live, before the command ends
        p.send_session_command_input("cli-logs", cmd.cmd_id, "two\n")
        rest, _ = follower.communicate(timeout=30)
        assert follower.returncode == 0 and rest.endswith("two\n")
        where = (sandbox_id, "cli-logs", cmd.cmd_id)
        plain = json.loads(cove_cmd("logs", "--json", *where, env=env).stdout)
        assert plain["stdout"].startswith("one\n") and plain["stdout"].endswith("two\n")
        resumed = cove_cmd("logs", "-f", "--offset", "4", *where, env=env)
        assert resumed.stdout == plain["output"][4:]
        p.delete_session("cli-logs")


def test_stdin_forwarding_that_dies_is_logged_unless_the_command_ended(
    server: ServerProcess, sandbox_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cove.cli")
    with Cove(api_url=server.api_url, api_key=server.key, keep=True) as c:
        sb = c.get(sandbox_id)
        p = sb.process
        p.create_session("cli-stdin")
        ended = p.execute_session_command("cli-stdin", SessionExecuteRequest("true"))
        waiting = p.execute_session_command(
            "cli-stdin", SessionExecuteRequest("cat", run_async=True)
        )
        pipes = [os.pipe(), os.pipe()]
        quiet = commands._forward_stdin(sb, "cli-stdin", ended.cmd_id, pipes[0][0])
        dying = commands._forward_stdin(sb, "cli-stdin", waiting.cmd_id, pipes[1][0])
        # Input for a command that has ended is expected to go nowhere: no log.
        os.write(pipes[0][1], b"late\n")
        quiet.join(30)
        assert not quiet.is_alive() and not caplog.records
        # The session goes away under a command still reading: that is a failure.
        p.delete_session("cli-stdin")
        os.write(pipes[1][1], b"lost\n")
        dying.join(30)
        assert not dying.is_alive()
        for fds in pipes:
            for fd in fds:
                os.close(fd)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "forwarding stdin" in record.getMessage()
    assert record.exc_info is not None and "not found" in str(record.exc_info[1])


def test_exec_i_says_on_stderr_when_stdin_forwarding_dies(
    env: dict[str, str], sandbox_id: str
) -> None:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [COVE, "exec", "-i", sandbox_id, "--", "echo started; sleep 60"],
        env=env, stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=foreground_sigint,
    )  # fmt: skip
    os.close(read_end)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "started\n"

    def feed() -> None:  # more than the agent holds for a command that does not read
        with contextlib.suppress(BrokenPipeError):  # the CLI exits first (interrupted below)
            os.write(write_end, b"x" * (6 * 1024 * 1024))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    line = proc.stderr.readline()
    assert line.startswith("cove: forwarding stdin to the command stopped"), line
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    feeder.join(30)
    os.close(write_end)
    assert proc.returncode == 130


def test_shell_runs_a_pty_and_exits_with_the_shells_code(
    env: dict[str, str], sandbox_id: str
) -> None:
    done = cove_cmd("shell", sandbox_id, env=env, stdin="echo in-$((40+2))\nexit 3\n", timeout=30)
    assert done.returncode == 3, done.stderr
    assert "in-42" in done.stdout


def test_errors_are_clear_and_exit_nonzero(env: dict[str, str]) -> None:
    missing = cove_cmd("exec", "no-such-sandbox", "--", "true", env=env)
    assert missing.returncode == 125 and "not found" in missing.stderr
    bad_key = cove_cmd("list", env={**env, "COVE_API_KEY": "wrong"})
    assert bad_key.returncode == 1 and "COVE_API_KEY" in bad_key.stderr


@pytest.mark.timeout(300)
def test_embedded_cli_needs_no_server(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    local = {**clean, "XDG_CACHE_HOME": str(tmp_path)}
    made = cove_cmd("create", "--name", "local-one", env=local)
    assert made.returncode == 0, made.stderr
    # A later invocation (a new embedded control plane) finds the sandbox again.
    assert cove_cmd("exec", "local-one", "--", "echo there", env=local).stdout == "there\n"
    assert cove_cmd("delete", "local-one", env=local).returncode == 0
    assert json.loads(cove_cmd("list", "--json", env=local).stdout) == []


def test_progress_shows_only_on_slow_waits_on_a_terminal() -> None:
    class FakeTerminal(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.drawn = threading.Event()

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> int:
            self.drawn.set()
            return super().write(s)

    quick = FakeTerminal()
    with progress("quick", stream=quick):
        pass
    assert quick.getvalue() == ""
    slow = FakeTerminal()
    with progress("creating sandbox", stream=slow):
        assert slow.drawn.wait(30)  # drawn after about a second
    assert "creating sandbox" in slow.getvalue() and slow.getvalue().endswith("\r\033[K")


def test_nodes_lists_this_host(env: dict[str, str], sandbox_id: str) -> None:
    done = cove_cmd("nodes", "--json", env=env)
    assert done.returncode == 0, done.stderr
    (node,) = json.loads(done.stdout)
    assert node["id"] == "local" and node["alive"] is True
    assert node["capacity"]["cpu"] == os.cpu_count() and node["sandboxes"] >= 1
    assert node["free"]["cpu"] == node["capacity"]["cpu"] - node["used"]["cpu"]
    table = cove_cmd("nodes", env=env)
    assert table.stdout.splitlines()[1].startswith("local  yes")
