"""Auth and tenancy: every route takes a key, and a key sees only its own sandboxes."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.helpers import sandbox_dir
from tests.serverproc import ServerProcess

# One of each kind of route: /api lifecycle, the OpenAPI document, the toolbox proxy.
ROUTES = [
    ("GET", "/api/sandbox"),
    ("POST", "/api/sandbox"),
    ("GET", "/api/sandbox/whatever"),
    ("DELETE", "/api/sandbox/whatever"),
    ("POST", "/api/sandbox/whatever/start"),
    ("POST", "/api/sandbox/whatever/stop"),
    ("GET", "/api/sandbox/whatever/toolbox-proxy-url"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/no-such-route"),
    ("POST", "/toolbox/whatever/process/execute"),
    ("GET", "/toolbox/whatever/version"),
    ("DELETE", "/toolbox/whatever/process/session/s"),
]
BAD_HEADERS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dGVzdC1rZXktYWxpY2U6"},
    {"Authorization": "test-key-alice"},  # the right key without the scheme
    {"Authorization": "Bearer test-key-alice-but-longer"},
    {"Authorization": "Bearer TEST-KEY-ALICE"},
]


@pytest.fixture(scope="module")
def bob(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.keys[1]}"}, timeout=60
    ) as client:
        yield client


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
def test_every_route_refuses_a_missing_or_wrong_key(
    server: ServerProcess, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path in ROUTES:
            r = client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["code"] == "UNAUTHORIZED"


def test_health_and_the_dashboard_sign_in_are_the_only_open_routes(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    # The dashboard's page shows only the sign-in form without a session.
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200 and 'name="key"' in page.text and "csrf" not in page.text
    # Open means that exact path, not everything that starts like it.
    for path in ("/healthz", "/health/x", "/health/../api/sandbox", "/dash/loginx", "/dash/x",
                 "/dash/static", "/dash/logout/x"):  # fmt: skip
        assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 401, path
    # Under the static prefix only the dashboard's own files: a `..` is not followed.
    r = httpx.get(f"{server.url}/dash/static/%2e%2e/%2e%2e/api/sandbox", timeout=10)
    assert r.status_code == 404 and "no such dashboard file" in r.json()["message"]


def test_websocket_upgrade_without_a_key_is_refused(server: ServerProcess, sandbox: Any) -> None:
    path = f"/toolbox/{sandbox.id}/process/interpreter/execute"
    assert _upgrade_status(server, path, None) == 401
    assert _upgrade_status(server, path, "Bearer wrong") == 401


def test_the_sdk_with_a_wrong_key_gets_an_auth_error(server: ServerProcess) -> None:
    from daytona import Daytona, DaytonaAuthenticationError, DaytonaConfig

    intruder = Daytona(DaytonaConfig(api_key="wrong-key", api_url=server.api_url))
    with pytest.raises(DaytonaAuthenticationError):
        list(intruder.list())


def test_several_configured_keys_all_work(server: ServerProcess) -> None:
    assert len(server.keys) >= 2
    for key in server.keys:
        r = httpx.get(
            f"{server.api_url}/sandbox", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert r.status_code == 200


def test_another_tenant_cannot_see_or_touch_a_sandbox(
    sandbox: Any, bob: httpx.Client, other_daytona: Any
) -> None:
    from daytona import DaytonaNotFoundError

    sid, name = sandbox.id, sandbox.name
    for ref in (sid, name):
        assert bob.get(f"/api/sandbox/{ref}").status_code == 404
        assert bob.get(f"/api/sandbox/{ref}/toolbox-proxy-url").status_code == 404
        assert bob.post(f"/api/sandbox/{ref}/stop").status_code == 404
        assert bob.post(f"/api/sandbox/{ref}/start").status_code == 404
        assert bob.delete(f"/api/sandbox/{ref}").status_code == 404
    listed = bob.get("/api/sandbox").json()["items"]
    assert sid not in {item["id"] for item in listed}
    with pytest.raises(DaytonaNotFoundError):
        other_daytona.get(sid)
    assert sid not in {s.id for s in other_daytona.list()}
    # ... and the sandbox is untouched by all that.
    assert sandbox.process.exec("echo alive").result == "alive\n"


def test_another_tenant_cannot_use_the_toolbox_proxy(
    server: ServerProcess, sandbox: Any, bob: httpx.Client
) -> None:
    sid = sandbox.id
    for method, path in [
        ("POST", "/process/execute"),
        ("POST", "/process/code-run"),
        ("GET", "/version"),
        ("GET", "/process/session"),
        ("POST", "/process/session"),
        ("GET", "/process/interpreter/context"),
    ]:
        r = bob.request(method, f"/toolbox/{sid}{path}", json={"command": "touch ~/owned"})
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "NOT_FOUND"
    # A sandbox's name is not a toolbox id, for its owner either.
    r = bob.post(f"/toolbox/{sandbox.name}/process/execute", json={"command": "true"})
    assert r.status_code == 404
    assert _upgrade_status(server, f"/toolbox/{sid}/process/interpreter/execute", bob) == 404
    assert sandbox.process.exec("test -e ~/owned; echo $?").result == "1\n"


def test_tenants_have_separate_name_spaces(daytona: Any, other_daytona: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    name = f"shared-name-{uuid.uuid4().hex[:6]}"
    mine = daytona.create(CreateSandboxFromSnapshotParams(name=name))
    try:
        theirs = other_daytona.create(CreateSandboxFromSnapshotParams(name=name))
        try:
            assert mine.id != theirs.id
            assert daytona.get(name).id == mine.id
            assert other_daytona.get(name).id == theirs.id
        finally:
            other_daytona.delete(theirs)
        assert daytona.get(name).id == mine.id
    finally:
        daytona.delete(mine)


def test_stored_keys_are_hashed(server: ServerProcess, sandbox: Any) -> None:
    db = sqlite3.connect(f"file:{server.data_dir / 'cove.db'}?mode=ro", uri=True)
    try:
        hashes = [row[0] for row in db.execute("SELECT hash FROM api_keys")]
        owners = {row[0] for row in db.execute("SELECT owner FROM sandboxes")}
    finally:
        db.close()
    assert len(hashes) >= len(server.keys)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes)
    assert owners <= set(hashes)
    # No file the server wrote (database, WAL, workspace, agent config and log)
    # holds a key in clear.
    places = [server.data_dir, sandbox_dir(server, sandbox.id) / "control"]
    for path in _files(places):
        data = path.read_bytes()
        for key in server.keys:
            assert key.encode() not in data, path
    assert (server.data_dir / "cove.db").stat().st_mode & 0o077 == 0


def test_a_generated_key_is_kept_0600_and_only_hashed_in_the_database(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", [])
    proc.start()
    try:
        key_file = tmp_path / "data" / "api-key"
        key = key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o777 == 0o600
        ok = httpx.get(
            f"{proc.api_url}/sandbox", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert ok.status_code == 200
        assert httpx.get(f"{proc.api_url}/sandbox", timeout=30).status_code == 401
    finally:
        proc.stop()
    for name in ("cove.db", "cove.db-wal"):
        path = tmp_path / "data" / name
        if path.exists():
            assert key.encode() not in path.read_bytes()


def _files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path


def _upgrade_status(server: ServerProcess, path: str, auth: str | httpx.Client | None) -> int:
    """The HTTP status a raw WebSocket upgrade gets (101 means accepted)."""
    if isinstance(auth, httpx.Client):
        auth = auth.headers["Authorization"]
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])
