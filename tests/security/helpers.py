"""Helpers for the security tests: raw toolbox calls and the host side of sandboxes."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import httpx

from cove.runtime.local import default_sandbox_root
from tests.serverproc import ServerProcess


def run(api: httpx.Client, sandbox_id: str, command: str, timeout: float = 20) -> dict[str, Any]:
    """`/process/execute` through the proxy; the body with separate stdout/stderr."""
    r = api.post(
        f"/toolbox/{sandbox_id}/process/execute",
        json={"command": command, "timeout": timeout},
        timeout=timeout + 30,
    )
    assert r.status_code in (200, 408), r.text
    body: dict[str, Any] = r.json()
    return body


def python(api: httpx.Client, sandbox_id: str, code: str, timeout: float = 20) -> dict[str, Any]:
    """Python code run by /process/code-run (Debian's python3 inside the sandbox)."""
    r = api.post(
        f"/toolbox/{sandbox_id}/process/code-run",
        json={"code": code, "language": "python", "timeout": timeout},
        timeout=timeout + 30,
    )
    assert r.status_code in (200, 408), r.text
    body: dict[str, Any] = r.json()
    return body


def _instance(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def sandbox_dir(server: ServerProcess, sandbox_id: str) -> Path:
    """Where the local backend keeps a sandbox on the host (home/ and control/); on the
    ray backend, the local backend of the node that runs it (its data dir is
    COVE_RAY_NODE_DIR/<control plane's instance>/<node>, all on this host in tests)."""
    node_dir = server.env.get("COVE_RAY_NODE_DIR")
    if not node_dir:
        return default_sandbox_root(server.data_dir) / _instance(server.data_dir) / sandbox_id
    for data_dir in Path(node_dir).glob(f"{_instance(server.data_dir)}/*"):
        path = default_sandbox_root(data_dir) / _instance(data_dir) / sandbox_id
        if path.is_dir():
            return path
    raise AssertionError(f"sandbox {sandbox_id} is on no node under {node_dir}")


def host_ip() -> str | None:
    """A non-loopback address of this host, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent for UDP connect
            addr = str(s.getsockname()[0])
        except OSError:
            return None
    return None if addr.startswith("127.") else addr
