"""Bearer tokens at rest: the store keeps hashes only (issue 18, item 7).

Preview, signed-URL and SSH tokens made through the official SDK are looked
for, byte for byte, in every file of the server's SQLite store (WAL
included); the signed URL still opens, so what is kept is enough to check it.
Git credentials are covered in test_git.py (store, log, responses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerProcess, free_port


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("secrets")
    env = {"COVE_SSH_PORT": str(free_port()), "COVE_WARM_POOL": "0"}
    proc = ServerProcess(tmp / "data", ["secrets-key"], env=env).start(60)
    try:
        yield proc
    finally:
        proc.delete_all_sandboxes()
        proc.stop()


@pytest.fixture(scope="module")
def sb(ssh_server: ServerProcess) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=ssh_server.key, api_url=ssh_server.api_url)).create()


def store_bytes(server: ServerProcess) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(server.data_dir.glob("cove.db*")))


def test_preview_signed_and_ssh_tokens_are_not_in_the_store(
    sb: Any, ssh_server: ServerProcess
) -> None:
    sandbox, server = sb, ssh_server
    preview = sandbox.get_preview_link(8080).token
    signed = sandbox.create_signed_preview_url(8080, 300)
    ssh = sandbox.create_ssh_access(30)
    tokens = [preview, signed.token, ssh.token]
    assert all(len(t) >= 16 for t in tokens)
    dump = store_bytes(server)
    assert [t for t in tokens if t.encode() in dump] == []
    # What is kept instead: the signed token's hash (SSH's too).
    assert hashlib.sha256(signed.token.encode()).hexdigest().encode() in dump
    assert hashlib.sha256(ssh.token.encode()).hexdigest().encode() in dump
    # The hash is enough to check the URL: nothing listens on 8080, so the
    # signed URL gets through to the sandbox (502), not a 401/404.
    r = httpx.get(signed.url, timeout=30)
    assert r.status_code == 502, r.text
    sandbox.expire_signed_preview_url(8080, signed.token)
    assert httpx.get(signed.url, timeout=30).status_code == 404
    # A browser's first visit carries the preview token in the query: the
    # access log keeps neither it nor the signed URL's token.
    link = sandbox.get_preview_link(8080)
    httpx.get(f"{link.url}?token={preview}", timeout=30)
    log = "".join(server.output)
    assert "/preview/" in log and "[redacted]" in log
    assert [t for t in tokens if t in log] == []
