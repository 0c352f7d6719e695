"""The dashboard across a control-plane restart, in headless chromium against a server
of this test's own: the signed-in page stays signed in (sessions are in the store, by
hash), and a command's log followed live resumes where it was, with nothing lost or
doubled, stdout and stderr apart. Sign-out deletes the session for good."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.cdp import Browser, chromium, desktop_browser
from tests.e2e.test_dashboard_browser import ARTIFACTS, click, navigating, set_value, wait_for
from tests.serverproc import ServerProcess

KEY = "dash-restart-key"
LOG = "document.getElementById('log-title').dataset"

pytestmark = pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed")


@pytest.fixture
def own_server() -> Iterator[ServerProcess]:
    """A server on a data dir that outlives its restarts (and on the same port)."""
    with tempfile.TemporaryDirectory(prefix="cove-dash-restart-") as tmp:
        proc = ServerProcess(Path(tmp) / "data", [KEY]).start(60)
        try:
            yield proc
        finally:
            if proc.proc is None:
                proc.start(60)
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture
def page() -> Iterator[Browser]:
    with desktop_browser() as b:
        yield b


def lines(prefix: str, first: int, last: int) -> str:
    return "".join(f"{prefix}-{i}\n" for i in range(first, last + 1))


def logs(page: Browser) -> tuple[str, str]:
    out = page.evaluate("document.getElementById('log-stdout').textContent")
    err = page.evaluate("document.getElementById('log-stderr').textContent")
    return out, err


def session_rows(server: ServerProcess) -> list[str]:
    with sqlite3.connect(server.data_dir / "cove.db") as db:
        return [r[0] for r in db.execute("SELECT id_hash FROM dashboard_sessions")]


@pytest.mark.timeout(300)
def test_a_restart_keeps_the_session_and_the_followed_log(
    page: Browser, own_server: ServerProcess
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=own_server.url, headers=auth, timeout=120) as api:
        sid = api.post("/api/sandbox", json={"name": "followed"}).json()["id"]
    page.navigate(own_server.url + "/")
    set_value(page, "#key", KEY)
    navigating(page, "document.querySelector('form.signin').submit()")
    (cookie,) = [c["value"] for c in page.send("Network.getCookies", urls=[own_server.url])
                 ["cookies"] if c["name"] == "cove_session"]  # fmt: skip
    # The store has the session, by its hash only.
    assert session_rows(own_server) == [hashlib.sha256(cookie.encode()).hexdigest()]

    # A command whose second half waits for a file the test makes after the restart,
    # so that part of the log comes live over the resumed connection.
    page.evaluate(f"location.hash = '#/sandbox/{sid}'")
    click(page, "#tab-commands")
    command = (
        "for i in 1 2 3 4 5; do echo out-$i; echo err-$i >&2; done; "
        "while [ ! -e ~/go ]; do sleep 0.1; done; "
        "for i in 6 7 8 9 10; do echo out-$i; echo err-$i >&2; sleep 0.1; done"
    )
    set_value(page, "#command-input", command)
    page.evaluate("document.getElementById('command-form').requestSubmit()")
    wait_for(page, f"{LOG}.connected === 'true' && "
             "document.getElementById('log-stderr').textContent.includes('err-5')")  # fmt: skip
    assert logs(page) == (lines("out", 1, 5), lines("err", 1, 5))

    own_server.stop()
    wait_for(page, f"{LOG}.connected === 'false' && Number({LOG}.drops) >= 1")
    own_server.start(60)
    # The page reconnects by itself, from the byte it had reached.
    wait_for(page, f"{LOG}.connected === 'true'", 90000)
    # What the page said while the server was away goes once it answers again.
    wait_for(page, "!document.querySelector('.flash.network')")
    assert page.evaluate(f"{LOG}.done") == "false"
    with httpx.Client(base_url=own_server.url, headers=auth, timeout=120) as api:
        r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "touch ~/go"})
        assert r.status_code == 200, r.text
    wait_for(page, f"{LOG}.done === 'true'", 60000)
    assert logs(page) == (lines("out", 1, 10), lines("err", 1, 10))
    assert "resumed after" in page.evaluate("document.getElementById('log-title').textContent")
    page.screenshot(ARTIFACTS / "dashboard-log-resumed.png")

    # Still signed in: the page never went back to the sign-in form, nor does a reload.
    assert page.evaluate("!!document.getElementById('signout')")
    page.navigate(own_server.url + "/")
    wait_for(page, "document.querySelector('#sandbox-rows tr[data-state=started]')")

    # Sign-out deletes the session: the cookie is refused, after a restart too.
    navigating(page, "document.getElementById('signout').click()")
    assert page.evaluate("!!document.getElementById('key')")
    assert session_rows(own_server) == []
    own_server.stop()
    own_server.start(60)
    r = httpx.get(own_server.api_url + "/sandbox", cookies={"cove_session": cookie}, timeout=60)
    assert r.status_code == 401 and "sign in again" in r.json()["message"]
