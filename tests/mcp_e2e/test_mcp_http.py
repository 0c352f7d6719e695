"""MCP over streamable HTTP at the control plane's /mcp: the Bearer key is
checked, each key sees only its own sandboxes, and the tools work as over stdio."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from mcp_types import ImageContent

from tests.mcp_e2e.client import call, call_error, decode_png, http_client, text_of
from tests.serverproc import ServerProcess


def test_http_tools_act_with_the_callers_key(server: ServerProcess) -> None:
    alice, bob = server.keys[0], server.keys[1]

    async def main() -> None:
        async with http_client(server, alice) as a, http_client(server, bob) as b:
            tools = {t.name for t in (await a.list_tools()).tools}
            assert "exec" in tools and "run_code" in tools
            # These would touch the control plane's own disk: not offered over HTTP.
            assert not tools & {"upload_file", "download_file"}

            made = await a.call_tool("create_sandbox", {"labels": {"mcp-http": "alice"}})
            sid = made.structured_content["id"]  # as the README's snippet reads it
            assert sid in text_of(made)
            try:
                r = await call(a, "exec", sandbox_id=sid, command="echo hi; echo oops >&2")
                assert (r["stdout"], r["stderr"], r["exit_code"]) == ("hi\n", "oops\n", 0)
                plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
                shown = await a.call_tool("run_code", {"sandbox_id": sid, "code": plot})
                [image] = [c for c in shown.content if isinstance(c, ImageContent)]
                assert decode_png(base64.b64decode(image.data))[0] > 100
                await call(a, "write_file", sandbox_id=sid, path="n.txt", content="alice's")
                res = await a.read_resource(f"cove://{sid}/files/n.txt")
                assert base64.b64decode(res.contents[0].blob) == b"alice's"  # type: ignore[union-attr]

                # Bob's key: Alice's sandbox does not exist for him.
                listed = await call(b, "list_sandboxes")
                assert sid not in {s["id"] for s in listed["sandboxes"]}
                err = await call_error(b, "exec", sandbox_id=sid, command="echo stolen")
                assert "stolen" not in err and "list_sandboxes" in err
                err = await call_error(b, "read_file", sandbox_id=sid, path="n.txt")
                assert "alice's" not in err
                assert sid in {s["id"] for s in (await call(a, "list_sandboxes"))["sandboxes"]}
            finally:
                await call(a, "delete_sandbox", sandbox_id=sid)

    asyncio.run(main())


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_http_without_a_valid_key_is_refused(server: ServerProcess, key: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    r = httpx.post(f"{server.url}/mcp", json=body, headers=headers, timeout=30)
    assert r.status_code == 401
    assert "tools" not in r.text


def test_an_unknown_sandbox_is_a_tool_error_naming_it(server: ServerProcess) -> None:
    async def main() -> None:
        async with http_client(server, server.key) as client:
            r = await client.call_tool("exec", {"sandbox_id": "no-such-sandbox", "command": "x"})
            assert r.is_error and "no-such-sandbox" in text_of(r)

    asyncio.run(main())


def test_http_under_another_host_name(server: ServerProcess) -> None:
    """Behind a proxy the Host is not localhost: the key is the guard, not the Host."""

    async def main() -> None:
        async with http_client(server, server.key, host="cove.test:443") as client:
            assert "exec" in {t.name for t in (await client.list_tools()).tools}

    asyncio.run(main())
