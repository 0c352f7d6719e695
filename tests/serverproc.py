"""A real `cove serve` process on a free port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COVE = str(Path(sys.executable).parent / "cove")
READY_LINE = "Uvicorn running on"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    keys: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # How port, data dir and keys reach `cove serve`: "default" (--port and
    # --data-dir flags, COVE_API_KEY), "env" (COVE_PORT, COVE_DATA_DIR,
    # COVE_API_KEY) or "flags" (--port, --data-dir, --api-key; no COVE_API_KEY).
    via: str = "default"
    args: list[str] = field(default_factory=list)  # more `cove serve` flags
    host: str = "127.0.0.1"  # where clients reach it (pass --host in args to move it)
    _drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def key(self) -> str:
        return self.keys[0]

    def start(self, timeout: float = 30.0) -> ServerProcess:
        # What this object decides is never inherited; other COVE_* settings are.
        decided = ("COVE_HOST", "COVE_PORT", "COVE_DATA_DIR", "COVE_API_KEY")
        env = {k: v for k, v in os.environ.items() if k not in decided}
        env["NO_PROXY"] = f"127.0.0.1,localhost,{self.host}"
        keys = ",".join(self.keys)
        command = [COVE, "serve", *self.args]
        if self.via == "env":
            env.update(
                COVE_PORT=str(self.port), COVE_DATA_DIR=str(self.data_dir), COVE_API_KEY=keys
            )
        else:
            command += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
            if self.via == "flags":
                command += ["--api-key", keys]
            else:
                env["COVE_API_KEY"] = keys
        env.update(self.env)
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        proc = self.proc
        began = len(self.output)  # a restart: only this run's lines say it listens

        def drain() -> None:  # keep the pipe empty; note when uvicorn is listening
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line)
                if READY_LINE in line:
                    ready.set()
            ready.set()  # EOF: the server died; start() reports it

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        ready.wait(timeout)
        # Listening, not merely ended: at EOF the process may not be reaped yet.
        listening = any(READY_LINE in line for line in self.output[began:])
        if not listening or proc.poll() is not None:
            self.stop()
            raise RuntimeError("cove serve did not start:\n" + "".join(self.output[-40:]))
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._drain is not None:
            self._drain.join(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def delete_all_sandboxes(self) -> None:
        """Delete every sandbox of every key: sandboxes outlive a server's stop."""
        import httpx

        if self.proc is None:
            return
        for key in self.keys:
            headers = {"Authorization": f"Bearer {key}"}
            try:
                listed = httpx.get(f"{self.api_url}/sandbox", headers=headers, timeout=30)
                for item in listed.json()["items"]:
                    url = f"{self.api_url}/sandbox/{item['id']}"
                    httpx.delete(url, headers=headers, timeout=60)
            except (httpx.HTTPError, KeyError, ValueError):
                pass

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


def chosen_backend(request: Any) -> tuple[dict[str, str], list[str]]:
    """Env and `cove serve` flags for COVE_TEST_BACKEND: nothing for local; for
    ray, the session's 3-node cluster (the `ray_cluster` fixture)."""
    if os.environ.get("COVE_TEST_BACKEND") != "ray":
        return {}, []
    cluster = request.getfixturevalue("ray_cluster")
    return cluster.env(), ["--backend", "ray"]
