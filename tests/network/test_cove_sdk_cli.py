"""The same policy through Cove's own SDK (sync and async) and CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from cove.sdk import AsyncCove, Cove
from tests.network.conftest import fetch, probe
from tests.network.internet import FakeInternet
from tests.serverproc import COVE, ServerProcess


def test_cove_sdk_create_update_and_effective_policy(
    netserver: ServerProcess, internet: FakeInternet
) -> None:
    a, b, _ = internet.addresses
    internet.set_zone({"api.sdk.test": [b]})
    with Cove(api_url=netserver.api_url, api_key=netserver.key) as cove:
        sb = cove.create(domain_allow_list="*.sdk.test", network_deny_list="10.0.0.0/8")
        assert sb.domain_allow_list == "*.sdk.test"
        policy = sb.get_network_settings()
        assert policy.domain_allow_list == ["*.sdk.test"]
        assert policy.network_deny_list == ["10.0.0.0/8"]
        assert policy.egress is True
        assert sb.process.exec("curl -sS -m 5 http://api.sdk.test/hello").result.strip() == (
            f"hello from {b}"
        )
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        sb.update_network_settings(network_allow_list=f"{a}/32")
        assert sb.network_allow_list == f"{a}/32"
        assert sb.process.exec(f"curl -sS -m 5 http://{a}/hello").result.strip() == (
            f"hello from {a}"
        )


def test_cove_async_sdk_blocks_at_runtime(netserver: ServerProcess, internet: FakeInternet) -> None:
    a = internet.addresses[0]

    async def run() -> tuple[str, str, bool]:
        async with AsyncCove(api_url=netserver.api_url, api_key=netserver.key) as cove:
            sb = await cove.create()
            cmd = f"curl -sS -m 5 http://{a}/hello || echo curl-failed"
            before = (await sb.process.exec(cmd)).result.strip()
            await sb.update_network_settings(network_block_all=True)
            after = (await sb.process.exec(cmd)).result.strip()
            return before, after, (await sb.get_network_settings()).network_block_all

    before, after, blocked = asyncio.run(run())
    assert before == f"hello from {a}"
    assert after.endswith("curl-failed")
    assert blocked


def test_cli_create_with_a_policy_and_change_it(
    netserver: ServerProcess, netdaytona: object, internet: FakeInternet
) -> None:
    a, b, _ = internet.addresses
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env = {**clean, "COVE_API_URL": netserver.api_url, "COVE_API_KEY": netserver.key}

    def cove(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([COVE, *args], env=env, capture_output=True, text=True, timeout=120)

    made = cove("create", "--json", "--network", f"allow={a}/32")
    assert made.returncode == 0, made.stderr
    sid = json.loads(made.stdout)["id"]
    try:
        shown = cove("network", sid)
        assert shown.stdout.splitlines() == ["egress: only listed destinations", f"allow: {a}/32"]
        sb = netdaytona.get(sid)  # type: ignore[attr-defined]
        assert fetch(sb, f"http://{a}/hello") == f"hello from {a}"
        assert probe(sb, f"{b}:80") == {f"{b}:80": "refused"}
        changed = cove("network", sid, "--network", "block", "--json")
        assert changed.returncode == 0, changed.stderr
        assert json.loads(changed.stdout)["networkBlockAll"] is True
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        bad = cove("network", sid, "--network", "allow=300.1.1.1/8")
        assert bad.returncode != 0
        assert "'300.1.1.1/8'" in bad.stderr
    finally:
        cove("delete", sid)
