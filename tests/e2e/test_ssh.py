"""SSH access (issue 13 item 6): the official SDK's three calls, and the system's OpenSSH
client logging in with a token: an interactive shell on a PTY the test drives, a command's
exit code and output, expired and revoked tokens refused, an open session keeping the
sandbox active, and `cove ssh`.

The server here runs with `--ssh-port` and a 2-second "minute"
(COVE_LIFECYCLE_MINUTE_SECONDS), so that a 1-minute token expires within the test.
"""

from __future__ import annotations

import datetime
import fcntl
import itertools
import os
import pty
import re
import select
import signal
import struct
import subprocess
import tempfile
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serverproc import COVE, ServerProcess, chosen_backend, free_port

MINUTE = 2.0  # seconds in one of this server's "minutes"
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",  # never prompt for a password the server does not take
    "-o", "ConnectTimeout=10",
]  # fmt: skip


@pytest.fixture(scope="module")
def ssh_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env, args = chosen_backend(request)  # COVE_TEST_BACKEND=ray: through a node's relay
    with tempfile.TemporaryDirectory(prefix="cove-ssh-") as tmp:
        proc = ServerProcess(
            Path(tmp) / "data",
            ["ssh-key-alice", "ssh-key-bob"],
            args=[*args, "--ssh-port", str(free_port())],
            env={**env, "COVE_LIFECYCLE_MINUTE_SECONDS": str(MINUTE), "COVE_WARM_POOL": "0"},
        )
        proc.start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()
        # Sessions ended every way (exit, revoke, client gone): none left a failure behind.
        log = "".join(proc.output)
        for sign in ("Traceback", "Task exception", "Exception in callback"):
            assert sign not in log, log[-4000:]


@pytest.fixture(scope="module")
def ssh_port(ssh_server: ServerProcess) -> int:
    return int(ssh_server.args[ssh_server.args.index("--ssh-port") + 1])


def _daytona(server: ServerProcess, key: str) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=key, api_url=server.api_url))


@pytest.fixture(scope="module")
def dt(ssh_server: ServerProcess) -> Any:
    return _daytona(ssh_server, ssh_server.keys[0])


@pytest.fixture(scope="module")
def sb(dt: Any) -> Iterator[Any]:
    from daytona import CreateSandboxFromSnapshotParams

    sandbox = dt.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    try:
        yield sandbox
    finally:
        dt.delete(sandbox)


def ssh_argv(access: Any, *more: str) -> list[str]:
    """`ssh` from the access's own `ssh_command`, with the test's options first."""
    words = access.ssh_command.split()
    return [words[0], *SSH_OPTIONS, *words[1:], *more]


def run_ssh(access: Any, *more: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(ssh_argv(access, *more), input=stdin, capture_output=True, timeout=60)
    # Without a known_hosts file ssh notes each new host key on stderr: not the command's.
    lines = done.stderr.splitlines(keepends=True)
    done.stderr = b"".join(x for x in lines if not x.startswith(b"Warning: Permanently added"))
    return done


def parse_time(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# -- the official SDK's calls -------------------------------------------------------


def test_create_validate_revoke_through_the_official_sdk(
    ssh_server: ServerProcess, ssh_port: int, dt: Any, sb: Any
) -> None:
    before = datetime.datetime.now(datetime.UTC)
    access = sb.create_ssh_access(expires_in_minutes=30)
    assert access.sandbox_id == sb.id
    assert len(access.token) >= 32 and access.token.isalnum()
    assert access.ssh_command == f"ssh -p {ssh_port} {access.token}@127.0.0.1"
    lifetime = (parse_time(access.expires_at) - parse_time(access.created_at)).total_seconds()
    assert lifetime == pytest.approx(30 * MINUTE, abs=0.01)
    assert parse_time(access.created_at) >= before - datetime.timedelta(seconds=1)

    valid = sb.validate_ssh_access(access.token)
    assert (valid.valid, valid.sandbox_id) == (True, sb.id)
    unknown = sb.validate_ssh_access("no-such-token")
    assert (unknown.valid, unknown.sandbox_id) == (False, "")
    # Another key learns nothing about this token.
    foreign = httpx.get(
        f"{ssh_server.api_url}/sandbox/ssh-access/validate",
        params={"token": access.token},
        headers={"Authorization": f"Bearer {ssh_server.keys[1]}"},
    )
    assert foreign.json() == {"valid": False, "sandboxId": ""}

    second = sb.create_ssh_access()  # default lifetime: 60 minutes
    lifetime = (parse_time(second.expires_at) - parse_time(second.created_at)).total_seconds()
    assert lifetime == pytest.approx(60 * MINUTE, abs=0.01)

    sb.revoke_ssh_access(access.token)
    assert sb.validate_ssh_access(access.token).valid is False
    assert sb.validate_ssh_access(second.token).valid is True  # only that one went
    refused = run_ssh(access, "true")
    assert refused.returncode == 255
    assert b"unknown, expired or revoked" in refused.stderr
    assert run_ssh(second, "echo still-open").stdout == b"still-open\n"


def test_revoking_without_a_token_revokes_them_all(sb: Any) -> None:
    first, second = sb.create_ssh_access(10), sb.create_ssh_access(10)
    sb._sandbox_api.revoke_ssh_access(sb.id)  # the SDK's generated client, with no token
    assert not sb.validate_ssh_access(first.token).valid
    assert not sb.validate_ssh_access(second.token).valid


def test_bad_input_is_refused_with_a_reason(ssh_server: ServerProcess, sb: Any) -> None:
    headers = {"Authorization": f"Bearer {ssh_server.keys[0]}"}
    with httpx.Client(base_url=ssh_server.api_url, headers=headers, timeout=30) as api:
        for value in ("0", "-5", "soon"):
            r = api.post(f"/sandbox/{sb.id}/ssh-access", params={"expiresInMinutes": value})
            assert r.status_code == 400, r.text
            assert "expiresInMinutes" in r.json()["message"]
        r = api.post("/sandbox/no-such-sandbox/ssh-access")
        assert r.status_code == 404 and "no-such-sandbox" in r.json()["message"]
        r = api.delete("/sandbox/no-such-sandbox/ssh-access")
        assert r.status_code == 404
        r = api.get("/sandbox/ssh-access/validate")
        assert r.status_code == 400 and "token" in r.json()["message"]
        paths = api.get("/openapi.json").json()["paths"]
        assert {"post", "delete"} <= set(paths["/api/sandbox/{sandboxIdOrName}/ssh-access"])
        assert "get" in paths["/api/sandbox/ssh-access/validate"]


def test_a_server_without_ssh_says_how_to_turn_it_on(api: httpx.Client) -> None:
    r = api.post("/api/sandbox/any/ssh-access")
    assert r.status_code == 409
    assert "--ssh-port" in r.json()["message"]


# -- the OpenSSH client -------------------------------------------------------------


def test_a_command_runs_without_a_terminal_with_its_exit_code(sb: Any) -> None:
    access = sb.create_ssh_access(10)
    done = run_ssh(access, "echo to-out; echo to-err >&2; test -t 0 || echo no-tty; exit 7")
    assert done.returncode == 7
    assert done.stdout == b"to-out\nno-tty\n"
    assert done.stderr == b"to-err\n"
    # stdin reaches the command, and its EOF ends `cat`.
    done = run_ssh(access, "cat; echo after-eof", stdin=b"line one\nline two\n")
    assert (done.returncode, done.stdout) == (0, b"line one\nline two\nafter-eof\n")
    # It runs as the sandbox's user, in the sandbox.
    done = run_ssh(access, "id -un; pwd")
    user, cwd = done.stdout.decode().splitlines()
    assert (user, cwd) == ("user", sb.get_user_home_dir())
    # A large output arrives whole (the channel's flow control, not a buffer).
    done = run_ssh(access, "head -c 3000000 /dev/zero | tr '\\0' x")
    assert done.stdout == b"x" * 3_000_000


def test_a_forced_terminal_runs_the_command_on_a_pty(sb: Any) -> None:
    access = sb.create_ssh_access(10)
    done = run_ssh(access, "-tt", "test -t 0 && echo on-a-tty; stty size; exit 3")
    assert done.returncode == 3
    assert b"on-a-tty" in done.stdout and b"24 80" in done.stdout


class Terminal:
    """ssh on a PTY this test holds: it types, reads the screen's bytes, resizes."""

    def __init__(self, argv: list[str], cols: int = 80, rows: int = 24) -> None:
        self.master, slave = pty.openpty()
        self.set_size(cols, rows)
        env = {**os.environ, "TERM": "xterm-256color"}  # what ssh asks the PTY to be
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env
        )
        os.close(slave)
        self.seen = bytearray()

    def set_size(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, cols: int, rows: int) -> None:
        self.set_size(cols, rows)
        # ssh holds no controlling terminal here, so tell it as the kernel would.
        self.proc.send_signal(signal.SIGWINCH)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, marker: bytes, timeout: float = 20, regex: bool = False) -> bytes:
        deadline = time.monotonic() + timeout
        while not (re.search(marker, self.seen) if regex else marker in self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"{marker!r} not in {bytes(self.seen)!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: ssh exited and the terminal closed
                    chunk = b""
                assert chunk, f"terminal closed before {marker!r}: {bytes(self.seen)!r}"
                self.seen += chunk
        return bytes(self.seen)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_an_interactive_shell_on_a_pty(sb: Any) -> None:
    access = sb.create_ssh_access(10)
    term = Terminal(ssh_argv(access), cols=100, rows=30)
    try:
        term.type("echo $((6*7))-$TERM-$(tput cols)\n")
        # The echoed line holds the expression; only the shell's answer has 42.
        term.read_until(b"42-xterm-256color-100")
        term.resize(120, 40)
        # The window change travels ssh -> server -> agent while the next line
        # may already be typed: ask again until the new size has arrived.
        deadline = time.monotonic() + 30
        for attempt in itertools.count():
            term.type(f"echo size-{attempt}=$(stty size)\n")
            term.read_until(f"size-{attempt}=".encode() + rb"\d+ \d+", regex=True)
            if f"size-{attempt}=40 120".encode() in term.seen:
                break
            assert time.monotonic() < deadline, bytes(term.seen)
        term.type("cd /tmp && echo in-$(pwd)\n")
        term.read_until(b"in-/tmp")
        term.type("exit 3\n")
        assert term.wait() == 3
    finally:
        term.close()


def test_revoking_closes_an_open_session(sb: Any) -> None:
    access = sb.create_ssh_access(10)
    term = Terminal(ssh_argv(access))
    try:
        term.type("echo ready-$((1+1))\n")
        term.read_until(b"ready-2")
        sb.revoke_ssh_access(access.token)
        assert term.wait() == 255  # ssh's status for a connection the server closed
    finally:
        term.close()


def test_an_expired_token_is_refused(sb: Any) -> None:
    access = sb.create_ssh_access(1)
    assert run_ssh(access, "echo while-valid").stdout == b"while-valid\n"
    left = (parse_time(access.expires_at) - datetime.datetime.now(datetime.UTC)).total_seconds()
    time.sleep(max(0.0, left) + 0.2)  # the token's own deadline, known from the answer
    assert sb.validate_ssh_access(access.token).valid is False
    refused = run_ssh(access, "echo too-late")
    assert refused.returncode == 255 and refused.stdout == b""
    assert b"unknown, expired or revoked" in refused.stderr


def test_an_open_session_keeps_the_sandbox_from_auto_stopping(dt: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    sandbox = dt.create(CreateSandboxFromSnapshotParams(auto_stop_interval=1))
    try:
        access = sandbox.create_ssh_access(10)
        # Idle in an open session for three auto-stop intervals: the sandbox stays up.
        done = run_ssh(access, f"sleep {3 * MINUTE}; echo kept")
        assert done.stdout == b"kept\n"
        sandbox.refresh_data()
        assert str(getattr(sandbox.state, "value", sandbox.state)) == "started"
    finally:
        dt.delete(sandbox)


def test_the_refusal_for_a_stopped_sandbox_says_why(dt: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    sandbox = dt.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    try:
        access = sandbox.create_ssh_access(10)
        sandbox.stop()
        done = run_ssh(access, "true")
        assert done.returncode == 255
        assert b"is stopped" in done.stderr
    finally:
        dt.delete(sandbox)


def test_cove_ssh_runs_the_system_ssh_with_a_fresh_token(
    ssh_server: ServerProcess, sb: Any
) -> None:
    env = {
        **os.environ,
        "COVE_API_URL": ssh_server.api_url,
        "COVE_API_KEY": ssh_server.keys[0],
    }
    options = [opt for opt in SSH_OPTIONS if opt != "-o"]
    argv = [COVE, "ssh", sb.id, *(f"-o{o}" for o in options), "echo via-cove; exit 9"]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (9, b"via-cove\n"), done.stderr


# -- Cove's own SDK -------------------------------------------------------------------


def test_the_cove_sdk_has_the_same_calls(ssh_server: ServerProcess, sb: Any) -> None:
    from cove import Cove

    with Cove(api_url=ssh_server.api_url, api_key=ssh_server.keys[0]) as c:
        sandbox = c.get(sb.id)
        access = sandbox.create_ssh_access(5)
        assert access.sandbox_id == sb.id and access.token in access.ssh_command
        assert run_ssh(access, "echo from-cove-sdk").stdout == b"from-cove-sdk\n"
        check = sandbox.validate_ssh_access(access.token)
        assert (check.valid, check.sandbox_id) == (True, sb.id)
        sandbox.revoke_ssh_access(access.token)
        assert sandbox.validate_ssh_access(access.token).valid is False


async def _async_calls(server: ServerProcess, sandbox_id: str) -> None:
    from cove import AsyncCove

    async with AsyncCove(api_url=server.api_url, api_key=server.keys[0]) as c:
        sandbox = await c.get(sandbox_id)
        first, second = await sandbox.create_ssh_access(), await sandbox.create_ssh_access()
        assert (await sandbox.validate_ssh_access(first.token)).valid
        await sandbox.revoke_ssh_access()  # all of them
        assert not (await sandbox.validate_ssh_access(first.token)).valid
        assert not (await sandbox.validate_ssh_access(second.token)).valid


def test_the_async_cove_sdk_has_the_same_calls(ssh_server: ServerProcess, sb: Any) -> None:
    import asyncio

    asyncio.run(_async_calls(ssh_server, sb.id))


def test_a_client_that_goes_away_ends_its_command(sb: Any) -> None:
    access = sb.create_ssh_access(10)
    argv = ssh_argv(access, "echo started; exec sleep 300")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"started\n"
        finally:
            proc.kill()
    # The server deletes the command's session behind the client: its sleep ends.
    deadline = time.monotonic() + 20
    while any(s.session_id.startswith("ssh-") for s in sb.process.list_sessions()):
        assert time.monotonic() < deadline, "the ssh session's command was left running"
        time.sleep(0.1)


def test_the_host_key_is_made_once_and_kept(tmp_path: Path) -> None:
    port = free_port()
    # COVE_SSH_PORT here; the other tests' server has the --ssh-port flag.
    server = ServerProcess(tmp_path / "data", ["hk"], env={"COVE_SSH_PORT": str(port)})

    def host_key() -> bytes:
        scan = subprocess.run(
            ["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"],
            capture_output=True,
            timeout=30,
        )
        assert scan.returncode == 0 and b"ssh-ed25519" in scan.stdout, scan.stderr
        return scan.stdout.split()[-1]

    try:
        server.start()
        first = host_key()
        server.stop()
        server.start()  # the same data directory: the same key
        assert host_key() == first
    finally:
        server.stop()
    key_file = tmp_path / "data" / "ssh_host_ed25519_key"
    assert key_file.stat().st_mode & 0o777 == 0o600


# -- sftp and scp -----------------------------------------------------------------------


def _target(access: Any) -> tuple[list[str], str]:
    """(`-P PORT` and the test's options, `TOKEN@HOST`) for scp and sftp."""
    words = access.ssh_command.split()  # ssh -p PORT TOKEN@HOST
    return [*SSH_OPTIONS, "-P", words[2]], words[3]


def test_scp_copies_files_both_ways_as_the_sandbox_user(sb: Any, tmp_path: Path) -> None:
    access = sb.create_ssh_access(10)
    options, dest = _target(access)
    payload = os.urandom(3 * 1024 * 1024 + 17)  # past the in-memory staging, odd-sized
    (tmp_path / "up.bin").write_bytes(payload)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "deep.txt").write_text("deep\n")

    def scp(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["scp", *options, *argv], capture_output=True, timeout=120)

    assert scp(str(tmp_path / "up.bin"), f"{dest}:up.bin").returncode == 0
    assert scp("-r", str(tree), f"{dest}:tree").returncode == 0
    done = run_ssh(access, "stat -c '%U %s' up.bin; cat tree/sub/deep.txt")
    assert done.stdout == f"user {len(payload)}\ndeep\n".encode()
    assert sb.fs.download_file("up.bin") == payload

    assert scp(f"{dest}:up.bin", str(tmp_path / "down.bin")).returncode == 0
    assert (tmp_path / "down.bin").read_bytes() == payload
    # The sandbox's user reads what it may: not the image's /etc/shadow.
    refused = scp(f"{dest}:/etc/shadow", str(tmp_path / "shadow"))
    assert refused.returncode != 0 and not (tmp_path / "shadow").exists()


def test_sftp_lists_makes_renames_and_removes(sb: Any, tmp_path: Path) -> None:
    access = sb.create_ssh_access(10)
    options, dest = _target(access)
    (tmp_path / "note.txt").write_text("a note\n")
    batch = "\n".join(
        [
            "mkdir box",
            f"put {tmp_path / 'note.txt'} box/note.txt",
            "rename box/note.txt box/renamed.txt",
            "chmod 600 box/renamed.txt",
            "ls -l box",
            "pwd",
        ]
    )
    done = subprocess.run(
        ["sftp", *options, "-b", "-", dest], input=batch.encode(), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listing = done.stdout.decode()
    assert "-rw-------" in listing and "renamed.txt" in listing
    assert f"Remote working directory: {sb.get_user_home_dir()}" in listing
    info = sb.fs.get_file_info("box/renamed.txt")
    assert (info.size, info.permissions) == (7, "0600")

    batch = "rm box/renamed.txt\nrmdir box\n"
    done = subprocess.run(
        ["sftp", *options, "-b", "-", dest], input=batch.encode(), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "box" not in [f.name for f in sb.fs.list_files(".")]


async def _write_in_place(access: Any) -> None:
    import asyncssh

    words = access.ssh_command.split()
    async with (
        asyncssh.connect(
            words[3].split("@")[1],
            int(words[2]),
            username=access.token,
            known_hosts=None,
            client_keys=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        async with sftp.open("inplace.txt", "wb") as f:
            await f.write(b"0123456789")
        async with sftp.open("inplace.txt", "r+b") as f:  # no truncation
            await f.seek(3)
            await f.write(b"abc")
        async with sftp.open("inplace.txt", "ab") as f:
            await f.write(b"-tail")
        async with sftp.open("inplace.txt", "rb") as f:
            await f.seek(2)
            assert await f.read(4) == b"2abc"
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.stat("no-such-file")
        # An exclusive create of an existing file fails (SFTPv3 has no "exists" code).
        with pytest.raises(asyncssh.SFTPFailure, match="already exists"):
            await sftp.open("inplace.txt", "xb")


def test_sftp_writes_in_place_keep_the_rest_of_the_file(sb: Any) -> None:
    import asyncio

    access = sb.create_ssh_access(10)
    asyncio.run(_write_in_place(access))
    assert sb.fs.download_file("inplace.txt") == b"012abc6789-tail"
