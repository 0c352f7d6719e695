"""Each server setting of the README's table, exercised: the environment group
shares one server (`tuned_server`), the flag group another, started here."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ServerProcess


def _client(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_port_data_dir_and_keys_from_the_environment(tuned_server: ServerProcess) -> None:
    # Started with no flags at all: it listens on COVE_PORT and keeps its
    # store in COVE_DATA_DIR.
    assert "--port" not in tuned_server.args and tuned_server.via == "env"
    with _client(tuned_server, "tuned-b") as c:
        made = c.post("/api/sandbox", json={"name": "in-the-data-dir"}).json()
        try:
            assert (tuned_server.data_dir / "cove.db").is_file()
            stored = (p.read_bytes() for p in tuned_server.data_dir.glob("cove.db*"))  # WAL too
            assert any(b"in-the-data-dir" in data for data in stored)
        finally:
            c.delete(f"/api/sandbox/{made['id']}")
    with _client(tuned_server, "not-a-key") as c:
        assert c.get("/api/sandbox").status_code == 401


def test_workspaces_live_under_cove_sandbox_root(tuned_server: ServerProcess) -> None:
    root = Path(tuned_server.env["COVE_SANDBOX_ROOT"])
    with _client(tuned_server, "tuned-b") as c:
        sid = c.post("/api/sandbox", json={"memory": 2}).json()["id"]
        try:
            c.post(f"/toolbox/{sid}/process/execute", json={"command": "echo mine > here.txt"})
            (home,) = root.glob(f"*/{sid}/home")
            assert (home / "here.txt").read_text() == "mine\n"
        finally:
            c.delete(f"/api/sandbox/{sid}")
    assert list(root.glob(f"*/{sid}")) == []


def test_disk_quota_off_records_the_size_only(tuned_server: ServerProcess) -> None:
    root = Path(tuned_server.env["COVE_SANDBOX_ROOT"])
    with _client(tuned_server, "tuned-b") as c:
        made = c.post("/api/sandbox", json={"disk": 1, "memory": 2}).json()
        try:
            assert made["disk"] == 1
            (base,) = root.glob(f"*/{made['id']}")
            assert not (base / "disk.ext4").exists()  # no disk of its own: the host's
            run = {"command": "df -B1 --output=size /home/user | tail -1"}
            size = c.post(f"/toolbox/{made['id']}/process/execute", json=run).json()["result"]
            assert int(size) > 2 * 1024**3
        finally:
            c.delete(f"/api/sandbox/{made['id']}")


def test_output_cap_from_the_environment(tuned_server: ServerProcess) -> None:
    with _client(tuned_server, "tuned-b") as c:
        sid = c.post("/api/sandbox", json={"memory": 2}).json()["id"]
        try:
            big = {"command": "head -c 5000 /dev/zero | tr '\\0' y", "maxOutputBytes": 10**9}
            body = c.post(f"/toolbox/{sid}/process/execute", json=big).json()
            assert (len(body["stdout"]), body["truncated"]) == (1000, True)
            small = {"command": "head -c 999 /dev/zero | tr '\\0' y"}
            body = c.post(f"/toolbox/{sid}/process/execute", json=small).json()
            assert (len(body["stdout"]), body["truncated"]) == (999, False)
        finally:
            c.delete(f"/api/sandbox/{sid}")


@pytest.fixture(scope="module")
def flag_server() -> Iterator[ServerProcess]:
    """--host (a loopback address other than the default), --port, --data-dir,
    --api-key and --backend, with no COVE_* variable set."""
    with tempfile.TemporaryDirectory(prefix="cove-flags-") as tmp:
        args = ["--host", "127.0.0.2", "--backend", "local"]
        proc = ServerProcess(Path(tmp), ["flag-key"], via="flags", args=args, host="127.0.0.2")
        proc.env["COVE_WARM_POOL"] = "0"
        proc.start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


def test_host_port_key_and_backend_from_flags(flag_server: ServerProcess) -> None:
    with _client(flag_server, "flag-key") as c:
        assert c.get("/api/sandbox").status_code == 200
        made = c.post("/api/sandbox", json={}).json()
        try:
            assert made["state"] == "started", made
            out = c.post(f"/toolbox/{made['id']}/process/execute", json={"command": "echo up"})
            assert out.json()["stdout"] == "up\n"
        finally:
            c.delete(f"/api/sandbox/{made['id']}")
    with _client(flag_server, "test-key-alice") as c:
        assert c.get("/api/sandbox").status_code == 401
    # Bound to 127.0.0.2 only: the default address has nothing on that port.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", flag_server.port), timeout=10).close()


def test_an_unknown_backend_is_refused_at_start(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, ["k"], via="flags", args=["--backend", "nope"])
    with pytest.raises(RuntimeError, match="unknown runtime backend 'nope'"):
        proc.start()
