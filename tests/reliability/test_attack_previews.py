"""Preview credentials attacked (issue 18, item 3): tampered, expired and other tenants'
tokens, and another tenant's sandbox id in the Host header. None may show content.

One server with host-form previews and two keys: alice's sandbox runs the test
app; bob has a sandbox and a signed URL of his own.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_preview import PORT, TOKEN, start_app
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(300)  # sandboxes and servers start slowly under load

DOMAIN = "attack.test"
CONTENT = "hello from the sandbox"


@pytest.fixture(scope="module")
def server2() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-preview-attack-") as tmp:
        proc = ServerProcess(
            Path(tmp) / "data", ["pv-alice", "pv-bob"], args=["--preview-domain", DOMAIN]
        ).start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="module")
def boxes(server2: ServerProcess) -> Iterator[tuple[Any, Any]]:
    from daytona import Daytona, DaytonaConfig

    alice = Daytona(DaytonaConfig(api_key=server2.keys[0], api_url=server2.api_url))
    bob = Daytona(DaytonaConfig(api_key=server2.keys[1], api_url=server2.api_url))
    a, b = alice.create(), bob.create()
    start_app(a)
    start_app(b)
    try:
        yield a, b
    finally:
        alice.delete(a)
        bob.delete(b)


def get(server: ServerProcess, host: str, path: str = "/hello", **headers: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        return c.get(path, headers={"Host": host, **headers})


def no_content(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert CONTENT not in r.text


def test_the_real_token_works(server2: ServerProcess, boxes: tuple[Any, Any]) -> None:
    a, _ = boxes
    link = a.get_preview_link(PORT)
    r = get(server2, f"{PORT}-{a.id}.{DOMAIN}", **{TOKEN: link.token})
    assert r.status_code == 200 and r.text.startswith(CONTENT)


def test_tampered_and_foreign_tokens_show_nothing(
    server2: ServerProcess, boxes: tuple[Any, Any]
) -> None:
    a, b = boxes
    mine, theirs = a.get_preview_link(PORT).token, b.get_preview_link(PORT).token
    host = f"{PORT}-{a.id}.{DOMAIN}"
    flipped = mine[:-1] + ("0" if mine[-1] != "0" else "1")
    for token in (flipped, mine[:-1], mine + "0", mine.upper(), theirs, "", "\u00e9" * 40):
        no_content(get(server2, host, **{TOKEN: token.encode()}), 401)  # type: ignore[arg-type]
        no_content(get(server2, host, f"/hello?token={token}"), 401)
        no_content(get(server2, host, Cookie=f"cove_preview_token={token}".encode()), 401)  # type: ignore[arg-type]
    # bob's API key is not a preview credential for alice's sandbox (nor is alice's own).
    for key in server2.keys:
        no_content(get(server2, host, Authorization=f"Bearer {key}"), 401)
    # The path form is held to the same rules.
    no_content(get(server2, "127.0.0.1", f"/preview/{a.id}/{PORT}/hello", **{TOKEN: theirs}), 401)


def test_odd_hosts_never_reach_another_sandbox(
    server2: ServerProcess, boxes: tuple[Any, Any]
) -> None:
    a, b = boxes
    theirs = b.get_preview_link(PORT).token
    for host in (
        f"{PORT}-{a.id}.{DOMAIN}.evil.example",  # not under the domain: the API, which wants a key
        f"{PORT}-{a.id}.{DOMAIN}:1",
        f"{PORT}-{a.id.upper()}.{DOMAIN}",
        f"{PORT}-{a.id}.{DOMAIN}.",
        f"{PORT}-{a.id}-{b.id}.{DOMAIN}",
        f"0{PORT}-{a.id}.{DOMAIN}",
        f"{PORT}-{b.id}.{a.id}.{DOMAIN}",
        f"{PORT}-..%2F{a.id}.{DOMAIN}",
    ):
        no_content(get(server2, host, **{TOKEN: theirs}), 400, 401, 404)


def test_signed_urls_expired_or_moved_show_nothing(
    server2: ServerProcess, boxes: tuple[Any, Any]
) -> None:
    a, b = boxes
    signed = b.create_signed_preview_url(PORT, 2)
    made = time.monotonic()
    host = f"{PORT}-{signed.token}.{DOMAIN}"
    assert get(server2, host).status_code == 200  # bob's own app, while valid
    no_content(get(server2, f"{PORT + 1}-{signed.token}.{DOMAIN}"), 401)  # another port
    # Bob's signed token does not open alice's sandbox in any position.
    no_content(get(server2, f"{PORT}-{a.id}.{DOMAIN}", **{TOKEN: signed.token}), 401)
    no_content(get(server2, f"{PORT}-{a.id}.{DOMAIN}", f"/?token={signed.token}"), 401)
    time.sleep(max(0.0, made + 2.2 - time.monotonic()))  # its whole life, known from the ask
    no_content(get(server2, host), 401)
    tampered = signed.token[:-1] + ("0" if signed.token[-1] != "0" else "1")
    no_content(get(server2, f"{PORT}-{tampered}.{DOMAIN}"), 404)
