"""SSH logins with bad tokens, and many of them (issue 18, item 3).

Wrong, tampered, revoked and expired tokens are refused with a banner that
says so; another key cannot confirm a token; and an address that keeps
failing is refused at once for a while, a valid token included (every
attempt costs the control plane a key exchange). The server here has its
own SSH port, so its throttling touches no other test.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.server.ssh.limiter import DEFAULT_LIMIT, FailedLogins
from tests.serverproc import ServerProcess, free_port

MINUTE = 1.0  # seconds in one of this server's "minutes"
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
]  # fmt: skip


@pytest.fixture(scope="module")
def ssh_server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-ssh-attack-") as tmp:
        proc = ServerProcess(
            Path(tmp) / "data",
            ["ssh-attack-alice", "ssh-attack-bob"],
            args=["--ssh-port", str(free_port())],
            env={"COVE_LIFECYCLE_MINUTE_SECONDS": str(MINUTE), "COVE_WARM_POOL": "0"},
        )
        proc.start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()
        assert "Traceback" not in "".join(proc.output)


def _daytona(server: ServerProcess, key: str) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=key, api_url=server.api_url))


@pytest.fixture(scope="module")
def sb(ssh_server: ServerProcess) -> Iterator[Any]:
    from daytona import CreateSandboxFromSnapshotParams

    dt = _daytona(ssh_server, ssh_server.keys[0])
    sandbox = dt.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0))
    try:
        yield sandbox
    finally:
        dt.delete(sandbox)


def ssh(access: Any, token: str | None = None) -> subprocess.CompletedProcess[bytes]:
    words = access.ssh_command.split()
    if token is not None:
        words[-1] = token + "@" + words[-1].split("@", 1)[1]
    argv = [words[0], *SSH_OPTIONS, *words[1:], "echo in"]
    return subprocess.run(argv, capture_output=True, timeout=60)


@pytest.mark.timeout(300)  # a loaded shared host: many round trips
def test_bad_tokens_are_refused_then_the_address_is_throttled(
    ssh_server: ServerProcess, sb: Any
) -> None:
    good = sb.create_ssh_access(60)
    assert ssh(good).stdout == b"in\n"
    revoked = sb.create_ssh_access(60)
    sb.revoke_ssh_access(revoked.token)
    expired = sb.create_ssh_access(1)
    time.sleep(MINUTE + 0.2)  # one of this server's minutes: the token's whole life
    tampered = good.token[:-1] + ("a" if good.token[-1] != "a" else "b")
    attempts = [
        ("wrong", ssh(good, "x" * 32)),
        ("tampered", ssh(good, tampered)),
        ("revoked", ssh(revoked)),
        ("expired", ssh(expired)),
    ]
    for what, done in attempts:
        assert done.returncode == 255 and done.stdout == b"", what
        assert b"unknown, expired or revoked" in done.stderr, (what, done.stderr)

    # A 4 KiB user name is cut off by asyncssh before any token lookup.
    long_name = ssh(good, "t" * 4096)
    assert long_name.returncode == 255 and b"Username too long" in long_name.stderr

    # Another key cannot even learn whether a token is valid.
    bob = {"Authorization": f"Bearer {ssh_server.keys[1]}"}
    url = f"{ssh_server.api_url}/sandbox/ssh-access/validate"
    answer = httpx.get(url, params={"token": good.token}, headers=bob, timeout=30)
    assert answer.status_code == 200 and answer.json()["valid"] is False
    assert sb.validate_ssh_access(good.token).valid is True  # its owner still can

    # Keep failing from this address: past the limit, even the good token is refused.
    failures = len(attempts)
    while failures < DEFAULT_LIMIT:
        assert ssh(good, f"guess{failures:027d}").returncode == 255
        failures += 1
    throttled = ssh(good)
    assert throttled.returncode == 255 and throttled.stdout == b""
    assert b"too many failed SSH logins" in throttled.stderr, throttled.stderr
    # The HTTP API is not throttled: the sandbox still answers there.
    assert sb.process.exec("echo api").result == "api\n"


def test_the_limit_forgets_an_address_after_its_window() -> None:
    now = [0.0]
    limiter = FailedLogins(limit=3, window=10.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.wait_left("a") == 0
        limiter.note("a")
        now[0] += 1
    assert limiter.wait_left("a") == pytest.approx(7.0)
    assert limiter.wait_left("b") == 0  # another address is not held
    now[0] = 10.5
    assert limiter.wait_left("a") == 0
