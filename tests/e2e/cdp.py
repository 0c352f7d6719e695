"""A tiny Chrome DevTools Protocol client for tests: headless Debian `chromium`, driven
over its own WebSocket (no Playwright, no browser download)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless chromium with one page; every wait has a deadline."""

    def __init__(self, binary: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="cove-chromium-")
        self.proc = subprocess.Popen(
            [
                binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-proxy-server", "--disable-dev-shm-usage", "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}", "about:blank",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        browser_ws = None
        for line in self.proc.stderr:  # chromium names its DevTools address on stderr
            if found := LISTENING.search(line):
                browser_ws = found[1]
                break
            assert time.monotonic() < deadline, "chromium did not start"
        assert browser_ws, "chromium exited before listening"
        # Keep its stderr pipe empty from here on: a full pipe would block chromium.
        self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
        self._drain.start()
        http = browser_ws.split("/devtools/")[0].replace("ws://", "http://")
        pages = httpx.get(f"{http}/json/list", timeout=timeout).json()
        page = next(p for p in pages if p["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None)
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=self.timeout))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait_event(self, method: str) -> dict[str, Any]:
        for i, msg in enumerate(self.events):
            if msg.get("method") == method:
                return dict(self.events.pop(i))
        while True:
            msg = json.loads(self.ws.recv(timeout=self.timeout))
            if msg.get("method") == method:
                return dict(msg)
            self.events.append(msg)

    def navigate(self, url: str) -> None:
        self.send("Page.enable")
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._drain.join(10)
            assert self.proc.stderr is not None
            self.proc.stderr.close()
            self._profile.cleanup()


@contextlib.contextmanager
def desktop_browser() -> Iterator[Browser]:
    """Headless chromium with a desktop-sized window (the dashboard's layout)."""
    binary = chromium()
    assert binary is not None
    b = Browser(binary)
    try:
        b.send("Emulation.setDeviceMetricsOverride", width=1280, height=860,
               deviceScaleFactor=1, mobile=False)  # fmt: skip
        yield b
    finally:
        b.close()
