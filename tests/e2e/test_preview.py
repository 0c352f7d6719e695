"""Preview links with the unmodified official SDK: `get_preview_link`, `set_public`,
`create_signed_preview_url`, `expire_signed_preview_url`; the traffic goes through the
agent to a small web app inside the sandbox (tests/e2e/preview_app.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

APP = Path(__file__).with_name("preview_app.py")
PORT = 8080
TOKEN = "x-daytona-preview-token"


def start_app(sandbox: Any, port: int = PORT) -> None:
    sandbox.fs.upload_file(APP.read_bytes(), "preview_app.py")
    r = sandbox.process.exec(f"python3 preview_app.py {port} </dev/null >/dev/null 2>&1")
    assert r.exit_code == 0, r.result


@pytest.fixture(scope="module")
def app(sandbox: Any) -> Any:
    start_app(sandbox)
    return sandbox


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def test_preview_link_serves_the_app_with_the_token(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(PORT)
    assert link.sandbox_id == app.id and link.token
    r = client.get(link.url + "/hello?x=1", headers={TOKEN: link.token})
    assert r.status_code == 200, r.text
    first, info = r.text.split("\n", 1)
    assert first == "hello from the sandbox"
    seen = json.loads(info)
    assert seen["target"] == "/hello?x=1"
    assert TOKEN not in seen["headers"]  # the app never sees the preview's credential
    assert seen["headers"]["x-forwarded-prefix"] == f"/preview/{app.id}/{PORT}"
    # The link itself, as a program uses it: the app's root, no redirect.
    root = client.get(link.url, headers={TOKEN: link.token})
    assert root.status_code == 200 and "Hello from the sandbox" in root.text


def test_without_or_with_a_wrong_token_no_content(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(PORT)
    for headers in ({}, {TOKEN: "wrong"}):
        r = client.get(link.url + "/hello", headers=headers)
        assert r.status_code == 401, r.text
        assert "hello from the sandbox" not in r.text
    assert client.get(link.url + "/hello?token=wrong").status_code == 401


def test_another_tenants_token_is_refused(
    app: Any, other_daytona: Any, client: httpx.Client
) -> None:
    other = other_daytona.create()
    try:
        theirs = other.get_preview_link(PORT)
        mine = app.get_preview_link(PORT)
        r = client.get(mine.url + "/hello", headers={TOKEN: theirs.token})
        assert r.status_code == 401 and "sandbox" not in r.text.split("<p>")[0].lower()
        assert "hello from the sandbox" not in r.text
    finally:
        other_daytona.delete(other)


def test_query_token_sets_a_scoped_cookie(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(PORT)
    r = client.get(link.url + f"/hello?token={link.token}&keep=1")
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and f"Path=/preview/{app.id}/{PORT}" in cookie
    assert json.loads(r.text.split("\n", 1)[1])["target"] == "/hello?keep=1"
    # The cookie alone is enough afterwards (httpx keeps it, scoped to that path).
    again = client.get(link.url + "/hello")
    assert again.status_code == 200 and again.text.startswith("hello from the sandbox")
    seen = json.loads(again.text.split("\n", 1)[1])["headers"]
    assert "cove_preview_token" not in seen.get("cookie", "")


def test_streamed_answer_arrives_piece_by_piece(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(PORT)
    auth = {TOKEN: link.token}
    with client.stream("GET", link.url + "/stream", headers=auth) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines) == "first"  # before the app was told to send the rest
        assert client.get(link.url + "/release", headers=auth).text == "released"
        assert next(lines) == "second"


def test_a_client_leaving_mid_stream_ends_the_apps_connection(
    app: Any, client: httpx.Client
) -> None:
    link = app.get_preview_link(PORT)
    auth = {TOKEN: link.token}
    with client.stream("GET", link.url + "/stream", headers=auth) as r:
        lines = r.iter_lines()  # kept: a dropped iterator closes the connection early
        assert next(lines) == "first"
        assert client.get(link.url + "/streams", headers=auth).text == "1"
    # The client left; the app, idle in the middle of its answer, sees its connection end.
    wait_for(lambda: client.get(link.url + "/streams", headers=auth).text == "0", 10, "stream end")


def test_websocket_to_a_port_with_nothing_listening_is_a_502(app: Any) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    link = app.get_preview_link(9)
    auth = {TOKEN: link.token}
    with pytest.raises(InvalidStatus) as info:
        connect(link.url.replace("http://", "ws://") + "/ws", additional_headers=auth)
    assert info.value.response.status_code == 502
    assert b"nothing is listening on port 9" in info.value.response.body


def test_kept_alive_connections_are_reused_and_a_closed_one_replaced(
    app: Any, client: httpx.Client
) -> None:
    link = app.get_preview_link(PORT)
    auth = {TOKEN: link.token}

    def accepted() -> int:
        return int(client.get(link.url + "/connections", headers=auth).text)

    before = accepted()
    for _ in range(10):
        assert client.get(link.url + "/hello", headers=auth).text.startswith("hello from")
    assert accepted() - before <= 2  # the app's connection outlives each request
    # The app closes every connection it keeps, the one it answers on included:
    # the next requests find that out and go on fresh connections.
    assert client.get(link.url + "/drop-idle", headers=auth).text == "dropped"
    for _ in range(3):
        assert client.get(link.url + "/hello", headers=auth).text.startswith("hello from")


def test_request_body_and_large_answer(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(PORT)
    auth = {TOKEN: link.token}
    body = bytes(range(256)) * 4096
    r = client.post(link.url + "/echo", headers=auth, content=body)
    assert r.content == f"{len(body)}:".encode() + body

    def pieces() -> Iterator[bytes]:  # no length known: sent chunked, passed on chunked
        for i in range(64):
            yield bytes([i]) * 65536

    r = client.post(link.url + "/echo", headers=auth, content=pieces())
    assert r.content == f"{64 * 65536}:".encode() + b"".join(pieces())
    big = client.get(link.url + "/big?n=20000000", headers=auth)
    assert len(big.content) == 20_000_000 and big.content.count(b"x") == 20_000_000


def test_absolute_redirect_and_cookie_stay_under_the_prefix(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(PORT)
    r = client.get(link.url + "/redirect", headers={TOKEN: link.token})
    assert r.status_code == 302
    assert r.headers["location"] == f"/preview/{app.id}/{PORT}/hello"
    assert f"Path=/preview/{app.id}/{PORT}/" in r.headers["set-cookie"]


def test_absolute_path_from_a_preview_page_goes_under_its_prefix(
    app: Any, server: ServerProcess, client: httpx.Client
) -> None:
    prefix = f"/preview/{app.id}/{PORT}"
    page = f"{server.url}{prefix}/absolute"
    r = client.get(f"{server.url}/app.js?v=2", headers={"Referer": page})
    assert r.status_code == 307 and r.headers["location"] == f"{prefix}/app.js?v=2"
    # The server's own paths stay its own, whatever the Referer says.
    r = client.get(f"{server.url}/api/sandbox", headers={"Referer": page})
    assert r.status_code == 401
    # No Referer, or another site's: the API's answer (no key: 401), not the app.
    assert client.get(f"{server.url}/app.js").status_code == 401
    elsewhere = {"Referer": f"http://example.invalid{prefix}/"}
    assert client.get(f"{server.url}/app.js", headers=elsewhere).status_code == 401


def test_a_browser_visit_with_the_token_is_redirected_without_it(
    app: Any, client: httpx.Client
) -> None:
    link = app.get_preview_link(PORT)
    r = client.get(f"{link.url}/hello?token={link.token}", headers={"Sec-Fetch-Mode": "navigate"})
    assert r.status_code == 303 and r.headers["location"] == f"/preview/{app.id}/{PORT}/hello"
    assert "HttpOnly" in r.headers["set-cookie"]
    assert "hello from the sandbox" not in r.text


def test_websocket_echo_through_the_preview(app: Any) -> None:
    from websockets.sync.client import connect

    link = app.get_preview_link(PORT)
    url = link.url.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers={TOKEN: link.token}) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "echo:hello"
        ws.send("again")
        assert ws.recv(timeout=10) == "echo:again"


def test_websocket_compression_agreed_by_the_app_passes_through(app: Any) -> None:
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.sync.client import connect

    link = app.get_preview_link(PORT)
    url = link.url.replace("http://", "ws://") + "/ws"
    offer = [ClientPerMessageDeflateFactory()]
    with connect(url, additional_headers={TOKEN: link.token}, extensions=offer) as ws:
        assert ws.response is not None
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert agreed.startswith("permessage-deflate")  # the app's answer, not a proxy's
        ws.send("squeeze " * 100)
        assert ws.recv(timeout=10) == "echo:" + "squeeze " * 100


def test_websocket_without_token_is_refused(app: Any) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    link = app.get_preview_link(PORT)
    with pytest.raises(InvalidStatus) as info:
        connect(link.url.replace("http://", "ws://") + "/ws")
    assert info.value.response.status_code == 401


def test_nothing_listening_is_a_502_page(app: Any, client: httpx.Client) -> None:
    link = app.get_preview_link(9)
    r = client.get(link.url + "/", headers={TOKEN: link.token})
    assert r.status_code == 502
    assert "text/html" in r.headers["content-type"]
    assert "nothing is listening on port 9" in r.text


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port(app: Any, server: ServerProcess, api: httpx.Client, port: str) -> None:
    r = api.get(f"/api/sandbox/{app.id}/ports/{port}/preview-url")
    assert r.status_code == 400 and "port must be a number from 1 to 65535" in r.text
    r = httpx.get(f"{server.url}/preview/{app.id}/{port}/")
    assert r.status_code == 400 and "port must be a number from 1 to 65535" in r.text


def test_unknown_sandbox(daytona: Any, server: ServerProcess, api: httpx.Client) -> None:
    assert api.get("/api/sandbox/nope/ports/80/preview-url").status_code == 404
    assert httpx.get(f"{server.url}/preview/nope/80/").status_code == 404


def test_public_sandbox_needs_no_token(daytona: Any, client: httpx.Client) -> None:
    sb = daytona.create()
    try:
        start_app(sb)
        link = sb.get_preview_link(PORT)
        assert client.get(link.url + "/hello").status_code == 401
        sb.set_public(True)
        assert daytona.get(sb.id).public is True
        r = client.get(link.url + "/hello")
        assert r.status_code == 200 and r.text.startswith("hello from the sandbox")
        sb.set_public(False)
        assert client.get(link.url + "/hello").status_code == 401
    finally:
        daytona.delete(sb)


def test_signed_url_works_alone_then_expires(app: Any, client: httpx.Client) -> None:
    signed = app.create_signed_preview_url(PORT, expires_in_seconds=2)
    assert signed.port == PORT and signed.sandbox_id == app.id and signed.token in signed.url
    r = client.get(signed.url + "/hello")  # no header, no cookie: the URL is the credential
    assert r.status_code == 200 and r.text.startswith("hello from the sandbox")
    other_port = signed.url.replace(f"/{PORT}", "/8081")
    assert client.get(other_port + "/hello").status_code == 401
    deadline = time.monotonic() + 10
    while client.get(signed.url + "/hello").status_code == 200:  # until its expiry passes
        assert time.monotonic() < deadline, "the signed URL did not expire"
        time.sleep(0.2)
    r = client.get(signed.url + "/hello")
    assert r.status_code == 401 and "expired" in r.text


def test_expire_signed_url_early(app: Any, client: httpx.Client) -> None:
    signed = app.create_signed_preview_url(PORT, expires_in_seconds=600)
    assert client.get(signed.url + "/hello").status_code == 200
    app.expire_signed_preview_url(PORT, signed.token)
    r = client.get(signed.url + "/hello")
    assert r.status_code == 404 and "hello from the sandbox" not in r.text


def test_preview_is_in_openapi(api: httpx.Client) -> None:
    paths = api.get("/api/openapi.json").json()["paths"]
    for path in (
        "/preview/{sandboxId}/{port}/{path}",
        "/api/sandbox/{sandboxIdOrName}/ports/{port}/preview-url",
        "/api/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url",
        "/api/sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url/{token}/expire",
        "/api/sandbox/{sandboxIdOrName}/public/{isPublic}",
    ):
        assert path in paths, path
