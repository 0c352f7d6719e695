"""Preview links with the Cove SDK (sync and async share one builder) and `cove preview`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import httpx
import pytest

from cove.sdk import AsyncCove, Cove, Sandbox
from cove.wire.errors import BadRequest
from tests.e2e.test_preview import APP, PORT, TOKEN
from tests.serverproc import COVE, ServerProcess


@pytest.fixture(scope="module")
def app(csb: Sandbox) -> Sandbox:
    csb.fs.upload_file(APP.read_bytes(), "preview_app.py")
    r = csb.process.exec(f"python3 preview_app.py {PORT} </dev/null >/dev/null 2>&1")
    assert r.exit_code == 0, r.result
    return csb


def test_link_signed_expire_public(app: Sandbox) -> None:
    link = app.get_preview_link(PORT)
    assert link.sandbox_id == app.id
    r = httpx.get(link.url + "/hello", headers={TOKEN: link.token})
    assert r.status_code == 200 and r.text.startswith("hello from the sandbox")
    signed = app.create_signed_preview_url(PORT, expires_in_seconds=300)
    assert signed.expires_at and signed.port == PORT
    assert httpx.get(signed.url + "/hello").status_code == 200
    app.expire_signed_preview_url(PORT, signed.token)
    assert httpx.get(signed.url + "/hello").status_code == 404
    assert app.public is False
    app.set_public(True)
    assert app.public is True
    assert httpx.get(link.url + "/hello").status_code == 200
    app.set_public(False)
    assert httpx.get(link.url + "/hello").status_code == 401


def test_bad_port_fails_before_sending(app: Sandbox) -> None:
    for port in (0, 65536):
        with pytest.raises(BadRequest, match="port must be a number from 1 to 65535"):
            app.get_preview_link(port)


def test_async_face(server: ServerProcess, app: Sandbox) -> None:
    async def main() -> str:
        async with AsyncCove(api_url=server.api_url, api_key=server.key) as c:
            sb = await c.get(app.id)
            link = await sb.get_preview_link(PORT)
            async with httpx.AsyncClient() as h:
                r = await h.get(link.url + "/hello", headers={TOKEN: link.token})
            return r.text

    assert asyncio.run(main()).startswith("hello from the sandbox")


def test_cli_prints_the_url_and_token(server: ServerProcess, app: Sandbox, cove: Cove) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env.update(COVE_API_URL=server.api_url, COVE_API_KEY=server.key)
    done = subprocess.run(
        [COVE, "preview", app.id, str(PORT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    url, token_line, browser = done.stdout.splitlines()
    token = token_line.split()[1]
    assert url == app.get_preview_link(PORT).url
    assert httpx.get(url + "/hello", headers={TOKEN: token}).status_code == 200
    assert httpx.get(browser.split(" ", 1)[1]).status_code == 200  # ?token= in the query
    # --open hands the browser link to the system's browser ($BROWSER, here `echo`).
    opened = subprocess.run(
        [COVE, "preview", app.id, str(PORT), "--open"],
        env={**env, "BROWSER": "echo"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.splitlines()[-1] == browser.split(" ", 1)[1]
    signed = subprocess.run(
        [COVE, "preview", app.id, str(PORT), "--signed", "60", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    data = json.loads(signed.stdout)
    assert data["port"] == PORT and data["token"] in data["url"]
    assert httpx.get(data["url"] + "/hello").text.startswith("hello from the sandbox")
