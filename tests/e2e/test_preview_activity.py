"""Preview traffic is activity: requests through a preview link, and a WebSocket held
open through one, keep an auto-stopping sandbox running; once they end, it stops.

The server runs with a half-second "minute" (COVE_LIFECYCLE_MINUTE_SECONDS)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_preview import PORT, TOKEN, start_app
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

MINUTE = 0.5
KEY = "preview-activity-key"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from daytona import Daytona, DaytonaConfig

    with tempfile.TemporaryDirectory(prefix="cove-preview-activity-") as tmp:
        env = {"COVE_LIFECYCLE_MINUTE_SECONDS": str(MINUTE)}
        server = ServerProcess(Path(tmp) / "data", [KEY], env=env).start()
        try:
            yield Daytona(DaytonaConfig(api_key=KEY, api_url=server.api_url))
        finally:
            server.delete_all_sandboxes()
            server.stop()


def stays_started(client: Any, sandbox_id: str, seconds: float) -> None:
    """Checks the state (reading it is not activity) for `seconds`; it must not stop."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert client.get(sandbox_id).state == "started"
        time.sleep(0.1)


@pytest.mark.timeout(300)
def test_an_open_preview_websocket_keeps_the_sandbox_running(client: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams
    from websockets.sync.client import connect

    # Auto-stop after 4 "minutes" (2 s) without activity.
    sb = client.create(CreateSandboxFromSnapshotParams(auto_stop_interval=4))
    start_app(sb)
    link = sb.get_preview_link(PORT)
    url = link.url.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers={TOKEN: link.token}) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo:hi"
        stays_started(client, sb.id, 8 * MINUTE)  # twice the interval, the socket idle
        ws.send("still here")
        assert ws.recv(timeout=10) == "echo:still here"
    wait_for(lambda: client.get(sb.id).state == "stopped", 30, "auto-stop after the preview")
