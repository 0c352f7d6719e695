"""A real browser through a preview link: headless chromium loads the page of a small
web app inside a sandbox, the page opens a WebSocket back through the same link, and
the test reads the round trip from the page. Path form (the default) and host form
(`COVE_PREVIEW_DOMAIN`; chromium resolves `*.localhost` to loopback itself). A
screenshot of each lands in build/test-artifacts/."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cdp import Browser, chromium
from tests.e2e.test_preview import PORT, start_app
from tests.serverproc import ServerProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"

# Resolves when the page's script has shown the WebSocket echo (or its failure).
ROUND_TRIP = """
new Promise((resolve) => {
  const text = () => document.getElementById("result").textContent;
  const settled = () => text().startsWith("round trip") || text() === "ws error";
  if (settled()) return resolve(text());
  new MutationObserver(() => settled() && resolve(text()))
    .observe(document.body, {subtree: true, childList: true, characterData: true});
})
"""

pytestmark = pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium()
    assert binary is not None
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def domain_server() -> Iterator[ServerProcess]:
    """A second server with host-form previews under `localhost`."""
    with tempfile.TemporaryDirectory(prefix="cove-preview-localhost-") as tmp:
        proc = ServerProcess(
            Path(tmp) / "data", ["domain-key"], env={"COVE_PREVIEW_DOMAIN": "localhost"}
        ).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


def round_trip(browser: Browser, url: str, shot: str) -> str:
    browser.navigate(url)
    text = browser.evaluate(ROUND_TRIP)
    browser.screenshot(ARTIFACTS / shot)
    return str(text)


def test_browser_page_and_websocket_path_form(browser: Browser, sandbox: Any) -> None:
    start_app(sandbox)
    link = sandbox.get_preview_link(PORT)
    assert f"/preview/{sandbox.id}/{PORT}" in link.url
    # The token once in the query: the server answers with the app and an HttpOnly
    # cookie, which the page's WebSocket then carries back through the same link.
    text = round_trip(browser, f"{link.url}/?token={link.token}", "preview-browser-path.png")
    assert text == "round trip: echo:ping-from-browser"
    assert browser.evaluate("document.cookie") == ""  # HttpOnly: the page cannot read it
    # The token left the address bar (a redirect set the cookie).
    assert browser.evaluate("location.href") == link.url + "/"
    # A script at an absolute path (/app.js) still comes from the app: the server
    # sends such a request under the prefix of the page that asked for it.
    browser.navigate(link.url + "/absolute")
    assert browser.evaluate("document.getElementById('result').textContent") == "script ran"
    # The bare link (no slash after the port) is redirected for a browser, so the
    # page's relative WebSocket URL still resolves under the prefix.
    text = round_trip(browser, link.url, "preview-browser-bare.png")
    assert text == "round trip: echo:ping-from-browser"


def test_browser_without_token_sees_no_content(browser: Browser, daytona: Any) -> None:
    sb = daytona.create()
    try:
        start_app(sb)
        link = sb.get_preview_link(PORT)
        browser.navigate(link.url + "/")
        body = browser.evaluate("document.body.innerText")
        assert "401" in body and "Hello from the sandbox" not in body
    finally:
        daytona.delete(sb)


def test_browser_host_form(browser: Browser, domain_server: ServerProcess) -> None:
    from daytona import Daytona, DaytonaConfig

    client = Daytona(DaytonaConfig(api_key=domain_server.key, api_url=domain_server.api_url))
    sb = client.create()
    try:
        start_app(sb)
        link = sb.get_preview_link(PORT)
        assert link.url == f"http://{PORT}-{sb.id}.localhost:{domain_server.port}"
        text = round_trip(browser, f"{link.url}/?token={link.token}", "preview-browser-host.png")
        assert text == "round trip: echo:ping-from-browser"
        signed = sb.create_signed_preview_url(PORT, 120)
        assert signed.url == f"http://{PORT}-{signed.token}.localhost:{domain_server.port}"
        text = round_trip(browser, signed.url + "/", "preview-browser-signed.png")
        assert text == "round trip: echo:ping-from-browser"
    finally:
        client.delete(sb)
