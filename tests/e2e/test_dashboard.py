"""The dashboard's sign-in, session cookie and CSRF rules, over plain HTTP and WebSocket
against a real server (the browser itself is driven in test_dashboard_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.serverproc import ServerProcess


@pytest.fixture
def browser_like(server: ServerProcess) -> Iterator[httpx.Client]:
    """A cookie-keeping client that sends the Origin a browser would."""
    with httpx.Client(
        base_url=server.url, headers={"Origin": server.url}, timeout=60, follow_redirects=False
    ) as client:
        yield client


def sign_in(client: httpx.Client, key: str) -> str:
    """Signs in; the CSRF token the page got."""
    r = client.post("/dash/login", data={"key": key})
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = client.get("/")
    marker = '<meta name="csrf-token" content="'
    assert marker in page.text
    return page.text.split(marker)[1].split('"')[0]


def test_sign_in_page_and_headers(browser_like: httpx.Client) -> None:
    r = browser_like.get("/")
    assert r.status_code == 200 and 'name="key"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text  # no inline script anywhere
    js = browser_like.get("/dash/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert browser_like.get("/dash/static/vendor/xterm-LICENSE.txt").status_code == 200
    # Only files under static/ (a `..` that survives URL normalisation is refused).
    assert browser_like.get("/dash/static/vendor/%2e%2e/app.css").status_code == 404
    assert browser_like.get("/dash/static/%2e%2e/routes.py").status_code == 404


def test_cookie_is_httponly_strict_and_never_the_key(
    server: ServerProcess, browser_like: httpx.Client
) -> None:
    r = browser_like.post("/dash/login", data={"key": server.key})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert server.key not in cookie


def test_wrong_key_and_foreign_origin_refused(
    server: ServerProcess, browser_like: httpx.Client
) -> None:
    r = browser_like.post("/dash/login", data={"key": "not-a-key"})
    assert (
        r.status_code == 401
        and "not valid" in r.text
        and "cove_session" not in r.headers.get("set-cookie", "")
    )
    r = browser_like.post(
        "/dash/login", data={"key": server.key}, headers={"Origin": "http://evil.example"}
    )
    assert r.status_code == 403 and "own page" in r.json()["message"]


def test_session_reads_and_writes_need_the_csrf_token(
    server: ServerProcess, browser_like: httpx.Client, daytona: Any, other_daytona: Any
) -> None:
    csrf = sign_in(browser_like, server.key)
    from daytona import CreateSandboxFromSnapshotParams as Params

    mine = daytona.create(Params(labels={"dash": "mine"}))
    theirs = other_daytona.create(Params(labels={"dash": "theirs"}))
    try:
        r = browser_like.get("/api/sandbox")  # the cookie alone: a same-origin script's try
        assert r.status_code == 403 and "CSRF" in r.json()["message"]
        listed = browser_like.get("/api/sandbox", headers={"X-CSRF-Token": csrf}).json()
        ids = {s["id"] for s in listed["items"]}
        assert mine.id in ids and theirs.id not in ids  # only this key's sandboxes
        r = browser_like.get("/api/sandbox", params={"csrf_token": csrf})  # links, WebSockets
        assert r.status_code == 200
        r = browser_like.post(f"/api/sandbox/{mine.id}/stop")
        assert r.status_code == 403 and "CSRF" in r.json()["message"]
        r = browser_like.post(f"/api/sandbox/{mine.id}/stop", headers={"X-CSRF-Token": "x" + csrf})
        assert r.status_code == 403
        r = browser_like.post(
            f"/api/sandbox/{mine.id}/stop",
            headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
        )
        assert r.status_code == 403
        r = browser_like.post(f"/api/sandbox/{mine.id}/stop", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["state"] == "stopped"
        r = browser_like.post(f"/api/sandbox/{theirs.id}/stop", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404  # another key's sandbox does not exist for this session
    finally:
        daytona.delete(mine)
        other_daytona.delete(theirs)


def test_terminal_websocket_needs_our_origin_and_the_token(
    server: ServerProcess, browser_like: httpx.Client, sandbox: Any
) -> None:
    csrf = sign_in(browser_like, server.key)
    cookie = f"cove_session={browser_like.cookies['cove_session']}"
    url = f"ws://127.0.0.1:{server.port}/toolbox/{sandbox.id}/process/pty/create-connect"
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}?id=dash-evil&csrf_token={csrf}", additional_headers={"Cookie": cookie},
                origin="http://evil.example")  # fmt: skip
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:  # our origin, but no token: a preview's try
        connect(f"{url}?id=dash-evil", additional_headers={"Cookie": cookie},
                origin=server.url)  # fmt: skip
    assert refused.value.response.status_code == 403
    with connect(
        f"{url}?id=dash-ok&cols=80&rows=24&csrf_token={csrf}",
        additional_headers={"Cookie": cookie}, origin=server.url,
    ) as ws:  # fmt: skip
        assert '"connected"' in str(ws.recv(timeout=30))
        ws.send(b"echo $((6*7))\n")
        seen = b""
        while b"42" not in seen:
            frame = ws.recv(timeout=30)
            seen += frame if isinstance(frame, bytes) else frame.encode()
    sandbox.process.kill_pty_session("dash-ok")


def test_sign_out_ends_the_session(server: ServerProcess, browser_like: httpx.Client) -> None:
    csrf = sign_in(browser_like, server.key)
    session = browser_like.cookies["cove_session"]
    assert browser_like.post("/dash/logout", data={"csrf": "wrong"}).status_code == 403
    r = browser_like.post("/dash/logout", data={"csrf": csrf})
    assert r.status_code == 303
    assert 'name="key"' in browser_like.get("/").text
    # The old cookie, replayed, no longer works: the session is gone on the server.
    r = httpx.get(f"{server.url}/api/sandbox", cookies={"cove_session": session})
    assert r.status_code == 401 and "sign in again" in r.json()["message"]
