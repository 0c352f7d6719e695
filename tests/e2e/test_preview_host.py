"""Host-form previews (`COVE_PREVIEW_DOMAIN`): `{port}-{sandboxId}.{domain}`, routed by
the Host header, reached here by programs that set it (no DNS needed)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_preview import PORT, TOKEN, start_app
from tests.serverproc import ServerProcess

DOMAIN = "preview.test"


@pytest.fixture(scope="module")
def domain_server() -> Iterator[ServerProcess]:
    """A second server with host-form previews under `DOMAIN` (`cove serve --preview-domain`)."""
    with tempfile.TemporaryDirectory(prefix="cove-preview-domain-") as tmp:
        # The flag here; the browser test sets the same through COVE_PREVIEW_DOMAIN.
        args = ["--preview-domain", DOMAIN]
        proc = ServerProcess(Path(tmp) / "data", ["domain-key"], args=args).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="module")
def app(domain_server: ServerProcess) -> Iterator[Any]:
    from daytona import Daytona, DaytonaConfig

    client = Daytona(DaytonaConfig(api_key=domain_server.key, api_url=domain_server.api_url))
    sb = client.create()
    start_app(sb)
    try:
        yield sb
    finally:
        client.delete(sb)


def host_of(url: str) -> str:
    return url.split("://", 1)[1]


def test_link_is_host_form_and_served_by_host(app: Any, domain_server: ServerProcess) -> None:
    link = app.get_preview_link(PORT)
    assert link.url == f"http://{PORT}-{app.id}.{DOMAIN}:{domain_server.port}"
    with httpx.Client(base_url=domain_server.url, timeout=30) as c:
        # Every path of that host is the app's: /api here is the app's own /api.
        r = c.get("/hello", headers={"Host": host_of(link.url), TOKEN: link.token})
        assert r.status_code == 200 and r.text.startswith("hello from the sandbox")
        assert "x-forwarded-prefix" not in r.text  # the app is at the root
        r = c.get("/api/sandbox", headers={"Host": host_of(link.url), TOKEN: link.token})
        assert r.status_code == 404 and r.text == "no such page"
        r = c.get(f"/?token={link.token}", headers={"Host": host_of(link.url)})
        assert r.status_code == 200 and "Path=/;" in r.headers["set-cookie"]
        # The server's own host still serves the API and the path form.
        assert c.get("/health").status_code == 200
        r = c.get(f"/preview/{app.id}/{PORT}/hello", headers={TOKEN: link.token})
        assert r.status_code == 200


def test_host_form_errors(app: Any, domain_server: ServerProcess) -> None:
    with httpx.Client(base_url=domain_server.url, timeout=30) as c:
        assert c.get("/", headers={"Host": f"70000-{app.id}.{DOMAIN}"}).status_code == 400
        assert c.get("/", headers={"Host": f"{PORT}-nosuch.{DOMAIN}"}).status_code == 404
        assert c.get("/", headers={"Host": f"{PORT}-{app.id}.{DOMAIN}"}).status_code == 401


def test_host_form_websocket_and_signed(app: Any, domain_server: ServerProcess) -> None:
    from websockets.sync.client import connect

    link = app.get_preview_link(PORT)
    ws_url = f"ws://127.0.0.1:{domain_server.port}/ws"
    headers = {"Host": host_of(link.url), TOKEN: link.token}
    with connect(ws_url, additional_headers=headers) as ws:
        ws.send("over host form")
        assert ws.recv(timeout=10) == "echo:over host form"
    signed = app.create_signed_preview_url(PORT, 60)
    assert signed.url == f"http://{PORT}-{signed.token}.{DOMAIN}:{domain_server.port}"
    r = httpx.get(f"{domain_server.url}/hello", headers={"Host": host_of(signed.url)})
    assert r.status_code == 200 and r.text.startswith("hello from the sandbox")


def test_links_survive_a_server_restart(app: Any, domain_server: ServerProcess) -> None:
    """The preview token is derived from a secret kept in the data dir, signed URLs
    are in the store: both work again after the control plane restarts."""
    link = app.get_preview_link(PORT)
    signed = app.create_signed_preview_url(PORT, 600)
    domain_server.kill9()
    domain_server.start()
    with httpx.Client(base_url=domain_server.url, timeout=30) as c:
        r = c.get("/hello", headers={"Host": host_of(link.url), TOKEN: link.token})
        assert r.status_code == 200 and r.text.startswith("hello from the sandbox")
        r = c.get("/hello", headers={"Host": host_of(signed.url)})
        assert r.status_code == 200 and r.text.startswith("hello from the sandbox")
