"""The link network (issue 22) through the unmodified official SDK.

Daytona's `exec_linked.py` flow in our words: an owner serves HTTP, its
ephemeral follower fetches it by the owner's sandbox name. Around it: only
the link group sees each other, a follower's egress policy still holds
beyond the link, and nothing of the link is left after deletes or a SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from typing import Any

import pytest
from daytona import CreateSandboxFromSnapshotParams, SessionExecuteRequest

from cove.sdk import AsyncCove, Cove, NotFound
from tests.network.conftest import fetch, listen, probe
from tests.network.internet import FakeInternet
from tests.network.test_teardown import index_of, own, remains, sdk  # noqa: F401  (fixture)
from tests.serverproc import COVE, ServerProcess

PORT = 3000


def follow(d: Any, owner: Any, **kw: Any) -> Any:
    return d.create(CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True, **kw))


def serve_http(sb: Any) -> None:
    """`python3 -m http.server` in a session, listening when this returns."""
    sb.fs.upload_file(b"hello from the owner\n", "/tmp/index.html")
    sb.process.create_session("web")
    sb.process.execute_session_command(
        "web",
        SessionExecuteRequest(command=f"cd /tmp && python3 -m http.server {PORT}", run_async=True),
    )
    # Until the port answers (bounded: 100 tries of 0.1 s, inside the sandbox).
    r = sb.process.exec(
        f"for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:{PORT}/ && exit 0; "
        "sleep 0.1; done; exit 1",
        timeout=30,
    )
    assert r.exit_code == 0, "the owner's http.server did not come up"


def link_remains(index: int) -> list[str]:
    """What is left of the link parts of network `index`: its chain, peer set, map entry."""
    left = []
    table = subprocess.run(["nft", "list", "table", "inet", "cove"], capture_output=True, text=True)
    if f"chain sb{index}_link " in table.stdout:
        left.append("link chain")
    if f"set sb{index}_peers " in table.stdout:
        left.append("peer set")
    if f'"cv-{index}" : jump sb{index}_link' in table.stdout:
        left.append("map entry")
    return left


def test_follower_fetches_the_owner_by_name_and_others_cannot(
    netdaytona: Any, internet: FakeInternet
) -> None:
    owner = netdaytona.create(CreateSandboxFromSnapshotParams(name="linked-web-owner"))
    stranger = netdaytona.create()
    try:
        follower = follow(netdaytona, owner, network_block_all=True)
        serve_http(owner)
        # By name, as exec_linked.py does, and by id.
        for ref in (owner.name, owner.id):
            assert fetch(follower, f"http://{ref}:{PORT}/index.html") == "hello from the owner"
        owner_ip = probe_address(owner)
        # The owner reaches its follower too (a listener there).
        listen(follower, 4000)
        assert probe(owner, f"{follower.name}:4000")[f"{follower.name}:4000"] == "open"
        # The follower's block-all still holds beyond the link.
        assert "curl-failed" in fetch(follower, f"http://{internet.addresses[0]}/hello")
        # An unlinked sandbox neither resolves the owner's name nor reaches its address.
        assert fetch(stranger, f"http://{owner.name}:{PORT}/").endswith("curl-failed:6")
        assert probe(stranger, f"{owner_ip}:{PORT}")[f"{owner_ip}:{PORT}"] == "refused"
        # Nor does the owner resolve an unrelated sandbox.
        assert fetch(owner, f"http://{stranger.id}:{PORT}/").endswith("curl-failed:6")
    finally:
        netdaytona.delete(owner)
        netdaytona.delete(stranger)


def probe_address(sb: Any) -> str:
    r = sb.process.exec("ip -4 -o addr show eth0")
    return str(r.result.split()[3].split("/")[0])


def test_two_link_groups_do_not_see_each_other(netdaytona: Any) -> None:
    o1, o2 = netdaytona.create(), netdaytona.create()
    try:
        f1 = follow(netdaytona, o1)
        follow(netdaytona, o2)
        serve_http(o2)
        o2_ip = probe_address(o2)
        assert fetch(f1, f"http://{o2.name}:{PORT}/").endswith("curl-failed:6")
        assert probe(f1, f"{o2_ip}:{PORT}")[f"{o2_ip}:{PORT}"] == "refused"
    finally:
        netdaytona.delete(o1)
        netdaytona.delete(o2)


def test_nothing_of_the_link_is_left_after_deletes(netdaytona: Any) -> None:
    owner = netdaytona.create()
    follower = follow(netdaytona, owner)
    indices = [index_of(owner), index_of(follower)]
    for i in indices:
        assert link_remains(i) == ["link chain", "peer set", "map entry"]
    netdaytona.delete(owner)  # takes the follower with it
    for i in indices:
        assert remains(i) == [] and link_remains(i) == []


def test_after_sigkill_the_link_works_again_then_goes_cleanly(own: ServerProcess) -> None:  # noqa: F811
    d = sdk(own)
    owner = d.create()
    follower = follow(d, owner)
    indices = [index_of(owner), index_of(follower)]
    own.kill9()
    own.start()
    d = sdk(own)
    owner, follower = d.get(owner.id), d.get(follower.id)
    serve_http(owner)
    assert fetch(follower, f"http://{owner.name}:{PORT}/index.html") == "hello from the owner"
    d.delete(owner)
    for i in indices:
        assert remains(i) == [] and link_remains(i) == []


def test_cove_sdk_links_and_the_follower_goes_with_its_owner(netserver: ServerProcess) -> None:
    with Cove(api_url=netserver.api_url, api_key=netserver.key) as cove:
        owner = cove.create(name="cove-sdk-owner")
        follower = cove.create(linked_sandbox=owner.name, ephemeral=True)
        assert follower.linked_sandbox_id == owner.id and follower.auto_delete_interval == 0
        assert owner.linked_sandbox_id is None
        port = 4001
        listen(owner, port)
        assert probe(follower, f"{owner.name}:{port}") == {f"{owner.name}:{port}": "open"}
        owner.delete()
        with pytest.raises(NotFound):
            cove.get(follower.id)


def test_cove_async_sdk_ephemeral_is_gone_after_stop(netserver: ServerProcess) -> None:
    async def run() -> str:
        async with AsyncCove(api_url=netserver.api_url, api_key=netserver.key) as cove:
            sb = await cove.create(ephemeral=True)
            await sb.stop()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the sweeper deletes it on the stop's wake-up
                try:
                    await cove.get(sb.id)
                except NotFound:
                    return "gone"
                await asyncio.sleep(0.1)
            return "still there"

    assert asyncio.run(run()) == "gone"


def test_cli_create_link_ephemeral(netserver: ServerProcess, netdaytona: Any) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env = {**clean, "COVE_API_URL": netserver.api_url, "COVE_API_KEY": netserver.key}

    def cove(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([COVE, *args], env=env, capture_output=True, text=True, timeout=120)

    made = cove("create", "--json", "--name", "cli-owner")
    assert made.returncode == 0, made.stderr
    owner_id = json.loads(made.stdout)["id"]
    try:
        refused = cove("create", "--link", "cli-owner")
        assert refused.returncode != 0 and "must be ephemeral" in refused.stderr
        made = cove("create", "--json", "--link", "cli-owner", "--ephemeral")
        assert made.returncode == 0, made.stderr
        shown = json.loads(made.stdout)
        assert shown["linkedSandboxId"] == owner_id and shown["autoDeleteInterval"] == 0
        follower = netdaytona.get(shown["id"])
        listen(netdaytona.get(owner_id), 4002)
        assert probe(follower, "cli-owner:4002") == {"cli-owner:4002": "open"}
    finally:
        cove("delete", owner_id)
    assert all(s.id != shown["id"] for s in netdaytona.list())
