"""Network settings attacked (issue 18, item 3): entries that are not what they seem,
the largest lists allowed, and updates racing the sandbox's own traffic.

Every bad entry is a 400 naming it and changes nothing; a full-size update
takes effect; twenty updates fired at once while the sandbox connects in a
loop all answer, and the last one is what holds after.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import pytest
from daytona import DaytonaError

from tests.network.conftest import fetch, probe
from tests.network.internet import FakeInternet
from tests.serverproc import ServerProcess

BAD_CIDRS = [
    "fe80::1%eth0",  # a scope id means nothing in a sandbox (and nft cannot read it)
    "fe80::1%eth0/64",
    "1.2.3.4/33",
    "::1/129",
    "10.0.0.0/8; flush ruleset",
    "{10.0.0.0/8}",
    "10.0.0.0/8\nflush ruleset",
    "10.0.0.0/-1",
    "010.0.0.1",
    "a" * 5000,
]


@pytest.fixture(scope="module")
def sb(netdaytona: Any) -> Any:
    box = netdaytona.create()
    yield box
    netdaytona.delete(box)


def settings(server: ServerProcess, sandbox_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.key}"}
    url = f"{server.api_url}/sandbox/{sandbox_id}/network-settings"
    return dict(httpx.get(url, headers=headers, timeout=30).json())


@pytest.mark.parametrize("entry", BAD_CIDRS)
def test_bad_cidrs_are_a_400_naming_them_and_change_nothing(
    sb: Any, netserver: ServerProcess, internet: FakeInternet, entry: str
) -> None:
    before = settings(netserver, sb.id)
    with pytest.raises(DaytonaError) as info:
        sb.update_network_settings(network_allow_list=entry)
    assert info.value.status_code == 400, info.value
    assert "is not a CIDR" in str(info.value), info.value
    headers = {"Authorization": f"Bearer {netserver.key}"}
    url = f"{netserver.api_url}/sandbox/{sb.id}/network-settings"
    r = httpx.post(url, json={"networkDenyList": entry}, headers=headers, timeout=30)
    assert r.status_code == 400 and "is not a CIDR" in r.text, r.text
    assert settings(netserver, sb.id) == before


@pytest.mark.timeout(300)  # a loaded shared host: many round trips
def test_the_largest_lists_take_effect(sb: Any, internet: FakeInternet) -> None:
    a, b, _ = internet.addresses
    cidrs = [f"10.{i // 256}.{i % 256}.0/24" for i in range(255)] + [f"{a}/32"]
    domains = [f"d{i}.example.test" for i in range(255)] + ["*.big.test"]
    started = time.monotonic()
    sb.update_network_settings(
        network_allow_list=",".join(cidrs), domain_allow_list=",".join(domains)
    )
    took = time.monotonic() - started
    try:
        assert fetch(sb, f"http://{a}/hello") == f"hello from {a}"
        assert probe(sb, f"{b}:80") == {f"{b}:80": "refused"}
        assert took < 30, took
    finally:
        sb.update_network_settings(network_block_all=False)


@pytest.mark.timeout(300)  # a loaded shared host: many round trips
def test_updates_racing_traffic_all_answer_and_the_last_holds(
    sb: Any, netserver: ServerProcess, internet: FakeInternet
) -> None:
    a = internet.addresses[0]
    loop = f"while :; do curl -s -m 1 -o /dev/null http://{a}/hello; done"
    session = "racer"
    sb.process.create_session(session)
    from daytona import SessionExecuteRequest

    sb.process.execute_session_command(session, SessionExecuteRequest(command=loop, run_async=True))
    headers = {"Authorization": f"Bearer {netserver.key}"}
    url = f"{netserver.api_url}/sandbox/{sb.id}/network-settings"
    bodies = [
        {"networkBlockAll": True},
        {"networkAllowList": f"{a}/32"},
        {"networkDenyList": f"{a}/32", "networkBlockAll": False, "networkAllowList": ""},
        {"domainAllowList": "*.racing.test"},
    ]

    def update(i: int) -> int:
        return httpx.post(
            url, json=bodies[i % len(bodies)], headers=headers, timeout=60
        ).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(update, range(20)))
        assert statuses == [200] * 20, statuses
        sb.update_network_settings(network_block_all=True)  # the last word
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        last = {"networkBlockAll": False, "networkAllowList": "", "networkDenyList": ""}
        assert (
            httpx.post(url, json={**last, "domainAllowList": ""}, headers=headers).status_code
            == 200
        )
        assert fetch(sb, f"http://{a}/hello") == f"hello from {a}"
    finally:
        sb.process.delete_session(session)
