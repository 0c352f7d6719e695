"""Embedded mode: a real control plane inside the caller's process.

With no server URL configured, `Cove()` runs `cove.server` (the same app
`cove serve` runs) in a uvicorn server on a loopback port, in a background
thread that owns its own event loop. The client then talks HTTP to it like
to any server: one code path, no hidden loop running the client's calls.

One embedded server per data directory and process, shared by every client
that asks for it (reference counted) and stopped when the last one closes.
Sandboxes outlive it only if a client was told to keep them; the next
embedded server on the same data directory finds them again.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from cove.wire.errors import CoveError


class EmbeddedServer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_url = ""
        self.api_key = ""
        self._thread: threading.Thread | None = None
        self._uv: object | None = None
        self.users = 0

    def start(self) -> None:
        if os.geteuid() != 0:
            raise CoveError(
                "embedded mode runs sandboxes on this machine with the local backend, which "
                "needs root (it switches to per-sandbox uids and creates cgroups). Run as root, "
                "or start a server (`sudo cove serve`) and set COVE_API_URL and COVE_API_KEY",
                code="EMBEDDED_NEEDS_ROOT",
            )
        import uvicorn

        from cove.runtime.local import bwrap_path
        from cove.server.app import KEEP_ALIVE_SECONDS, build_app, build_server
        from cove.settings import Settings

        if bwrap_path() is None:
            raise CoveError("embedded mode needs bubblewrap: apt-get install bubblewrap")
        # A short-lived embedded control plane gains nothing from pre-starting
        # sandboxes it will throw away: no warm pool unless asked for.
        pool = None if os.environ.get("COVE_WARM_POOL") else 0
        settings = Settings.from_env(
            data_dir=self.data_dir, api_keys=[], host="127.0.0.1", port=0, warm_pool=pool
        )
        server = build_server(settings)
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that
        # say they are TCP, and without it Nagle plus delayed ACKs cost 40 ms a call.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        ready = threading.Event()

        class _Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                try:
                    await super().startup(sockets)
                finally:
                    ready.set()  # the waiting constructor checks `started`

        config = uvicorn.Config(
            build_app(server),
            log_config=None,  # leave the caller's logging alone
            log_level="warning",
            ws=server.uvicorn_ws(),
            ws_ping_interval=None,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        uv = _Server(config)

        def run() -> None:
            try:
                uv.run(sockets=[sock])
            finally:
                ready.set()
                sock.close()

        self._thread = threading.Thread(target=run, name="cove-embedded-server", daemon=True)
        self._thread.start()
        ready.wait()
        if not uv.started:
            self._thread.join(10)
            raise CoveError(f"the embedded Cove server failed to start (data dir {self.data_dir})")
        self._uv = uv
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.api_key = server.api_keys[0]

    def stop(self) -> None:
        uv, thread = self._uv, self._thread
        if uv is not None:
            uv.should_exit = True  # type: ignore[attr-defined]
        if thread is not None:
            thread.join(30)
        self._uv = self._thread = None


_servers: dict[Path, EmbeddedServer] = {}
_lock = threading.Lock()


def acquire(data_dir: Path) -> EmbeddedServer:
    """The running embedded server for `data_dir`, started if needed."""
    key = data_dir.expanduser().resolve()
    with _lock:
        srv = _servers.get(key)
        if srv is None:
            srv = EmbeddedServer(key)
            srv.start()
            _servers[key] = srv
        srv.users += 1
        return srv


def release(srv: EmbeddedServer) -> None:
    with _lock:
        srv.users -= 1
        if srv.users > 0:
            return
        _servers.pop(srv.data_dir, None)
    srv.stop()
