"""Egress policy through the official SDK's own fields, at create and at runtime."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, DaytonaError

from cove.runtime.local.procs import pid_start_time
from tests.cgroupfiles import HOST
from tests.network.conftest import fetch, probe
from tests.network.internet import FakeInternet
from tests.reliability.helpers import agent_pid, wait_for, warm_pool_ready
from tests.serverproc import ServerProcess


def hello(addr: str) -> str:
    return f"hello from {addr}"


def create(daytona: Any, **fields: Any) -> Any:
    return daytona.create(CreateSandboxFromSnapshotParams(**fields))


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
    )


def test_cidr_allow_list_lets_listed_addresses_through_and_refuses_others(
    netdaytona: Any, internet: FakeInternet
) -> None:
    a, b, _ = internet.addresses
    sb = create(netdaytona, network_allow_list=f"{a}/32")
    try:
        assert sb.network_allow_list == f"{a}/32"
        assert fetch(sb, f"http://{a}/hello") == hello(a)
        assert probe(sb, f"{b}:80") == {f"{b}:80": "refused"}
    finally:
        netdaytona.delete(sb)


def test_domain_allow_list_follows_a_name_whose_address_changes(
    netdaytona: Any, internet: FakeInternet
) -> None:
    a, b, c = internet.addresses
    internet.set_zone({"pkg.moving.test": [b], "other.test": [c]}, ttl=1)
    sb = create(netdaytona, domain_allow_list="*.moving.test")
    try:
        assert sb.domain_allow_list == "*.moving.test"
        assert fetch(sb, "http://pkg.moving.test/hello") == hello(b)
        # An address no allowed name resolved to is refused, by address or by name.
        assert probe(sb, f"{c}:80", f"{a}:80") == {f"{c}:80": "refused", f"{a}:80": "refused"}
        r = sb.process.exec("getent hosts other.test || echo no-answer")
        assert r.result.strip() == "no-answer"
        internet.set_zone({"pkg.moving.test": [c]}, ttl=1)
        assert fetch(sb, "http://pkg.moving.test/hello") == hello(c)
    finally:
        netdaytona.delete(sb)


def test_update_network_settings_takes_effect_on_a_running_sandbox(
    netdaytona: Any, internet: FakeInternet
) -> None:
    a, b, _ = internet.addresses
    sb = netdaytona.create()
    try:
        assert fetch(sb, f"http://{a}/hello") == hello(a)
        sb.update_network_settings(network_block_all=True)
        assert sb.network_block_all is True
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        sb.update_network_settings(network_allow_list=f"{b}/32")
        assert sb.network_block_all is False
        assert fetch(sb, f"http://{b}/hello") == hello(b)
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        sb.update_network_settings(network_block_all=False)
        assert sb.network_allow_list is None
        assert fetch(sb, f"http://{a}/hello") == hello(a)
        sb.refresh_data()
        assert sb.network_block_all is False
    finally:
        netdaytona.delete(sb)


def test_block_all_at_create_leaves_loopback_only(netdaytona: Any, internet: FakeInternet) -> None:
    a = internet.addresses[0]
    internet.set_zone({"www.blocked.test": [a]})
    sb = create(netdaytona, network_block_all=True)
    try:
        assert sb.network_block_all is True
        assert probe(sb, f"{a}:80", f"{a}:5001") == {f"{a}:80": "refused", f"{a}:5001": "refused"}
        r = sb.process.exec("getent hosts www.blocked.test || echo no-answer")
        assert r.result.strip() == "no-answer"
        r = sb.process.exec("python3 -c 'import socket; socket.create_server((\"127.0.0.1\", 0))'")
        assert r.exit_code == 0
    finally:
        netdaytona.delete(sb)


def test_deny_list_and_the_effective_policy(
    netdaytona: Any, netserver: ServerProcess, internet: FakeInternet
) -> None:
    a, b, _ = internet.addresses
    sb = netdaytona.create()
    try:
        with api(netserver) as c:
            body = {"networkDenyList": f"{a}/32, 2001:db8::/32"}
            r = c.post(f"/sandbox/{sb.id}/network-settings", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["networkDenyList"] == f"{a}/32,2001:db8::/32"
            got = c.get(f"/sandbox/{sb.id}/network-settings").json()
        assert got == {
            "networkBlockAll": False,
            "networkAllowList": [],
            "networkDenyList": [f"{a}/32", "2001:db8::/32"],
            "domainAllowList": [],
            "outboundProxyUrl": None,
            "egress": True,
            "note": None,
        }
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        assert fetch(sb, f"http://{b}/hello") == hello(b)
    finally:
        netdaytona.delete(sb)


def test_outbound_proxy_url_sets_the_proxy_variables(netdaytona: Any) -> None:
    sb = create(netdaytona, outbound_proxy_url="http://proxy.test:3128")
    try:
        r = sb.process.exec("echo $HTTP_PROXY $https_proxy $NO_PROXY")
        assert r.result.strip() == "http://proxy.test:3128 http://proxy.test:3128 " + (
            "localhost,127.0.0.1,::1"
        )
    finally:
        netdaytona.delete(sb)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"network_allow_list": "10.0.0.0/8,10.1.2.300/32"}, "'10.1.2.300/32'"),
        ({"network_allow_list": "example.com"}, "'example.com'"),
        ({"domain_allow_list": "pypi.org,bad_domain!.com"}, "'bad_domain!.com'"),
        ({"domain_allow_list": "*.*.example.com"}, "'*.*.example.com'"),
        ({"network_allow_list": ",".join(f"10.0.{i // 256}.{i % 256}" for i in range(257))},
         "257 entries; at most 256"),
        ({"outbound_proxy_url": "not a url"}, "'not a url'"),
    ],
)  # fmt: skip
def test_malformed_entries_are_a_400_naming_the_entry(
    netdaytona: Any, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(DaytonaError) as info:
        create(netdaytona, **fields)
    assert info.value.status_code == 400
    assert named in str(info.value)


def test_a_malformed_update_is_a_400_and_changes_nothing(
    netdaytona: Any, netserver: ServerProcess
) -> None:
    sb = create(netdaytona, network_allow_list="198.18.0.0/15")
    try:
        with pytest.raises(DaytonaError) as info:
            sb.update_network_settings(domain_allow_list="ok.test,-bad-.test")
        assert info.value.status_code == 400
        assert "'-bad-.test'" in str(info.value)
        with api(netserver) as c:
            got = c.get(f"/sandbox/{sb.id}/network-settings").json()
        assert got["networkAllowList"] == ["198.18.0.0/15"]
        assert got["domainAllowList"] == []
    finally:
        netdaytona.delete(sb)


def test_an_update_while_stopped_is_in_force_at_the_next_start(
    netdaytona: Any, internet: FakeInternet
) -> None:
    a, b, _ = internet.addresses
    sb = netdaytona.create()
    try:
        sb.stop()
        sb.update_network_settings(network_allow_list=f"{b}/32")
        sb.start()
        assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        assert fetch(sb, f"http://{b}/hello") == hello(b)
    finally:
        netdaytona.delete(sb)


TCP_LOOKUP = r"""
import socket, struct, sys
name = sys.argv[1]
server = open("/etc/resolv.conf").read().split()[1]
q = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
msg = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)
s = socket.create_connection((server, 53), timeout=5)
s.sendall(len(msg).to_bytes(2, "big") + msg)
size = int.from_bytes(s.recv(2, socket.MSG_WAITALL), "big")
answer = s.recv(size, socket.MSG_WAITALL)
rcode, count = answer[3] & 15, struct.unpack_from("!H", answer, 6)[0]
print(rcode, socket.inet_ntoa(answer[-4:]) if count else "-")
"""


def test_dns_over_tcp_is_served_under_the_same_policy(
    netdaytona: Any, internet: FakeInternet
) -> None:
    b, c = internet.addresses[1], internet.addresses[2]
    internet.set_zone({"tcp.lookup.test": [c], "not.listed.test": [b]})
    sb = create(netdaytona, domain_allow_list="tcp.lookup.test")
    try:
        sb.fs.upload_file(TCP_LOOKUP.encode(), "/tmp/lookup.py")
        r = sb.process.exec("python3 /tmp/lookup.py tcp.lookup.test")
        assert r.result.strip() == f"0 {c}"
        assert fetch(sb, f"http://{c}/hello") == hello(c)  # opened by the TCP answer
        r = sb.process.exec("python3 /tmp/lookup.py not.listed.test")
        assert r.result.strip() == "5 -"  # REFUSED
    finally:
        netdaytona.delete(sb)


def _adopted(daytona: Any, server: ServerProcess, **fields: Any) -> Any:
    """A create with the pool full: its agent was running before the create was sent."""
    auth = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
        wait_for(lambda: warm_pool_ready(client) == 2 or None, 120, "the warm pool to hold 2")
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    sb = create(daytona, **fields)
    started = int(pid_start_time(agent_pid(sb.id)) or 0) / os.sysconf("SC_CLK_TCK")
    assert started < before, "the create started a sandbox instead of adopting a pooled one"
    return sb


def test_a_pooled_sandbox_runs_its_owners_policy_whatever_it_was_pooled_with(
    netdaytona: Any, netserver: ServerProcess, internet: FakeInternet
) -> None:
    """The pool starts sandboxes with the policy of the create that set its shape; an
    adoption rewrites the rules only when the owner's policy differs (or has an allow
    list), so both ways are checked: blocked after pooling open, open after open."""
    if HOST == "v2":  # no pool there (LocalBackend.serve)
        pytest.skip("the warm pool is off on cgroup v2 hosts (a v2 cgroup cannot be renamed)")
    a = internet.addresses[0]
    shape = {"env_vars": {"POOL_POLICY": "open"}}
    made = [create(netdaytona, **shape)]  # this shape's pool now fills with open sandboxes
    try:
        made.append(_adopted(netdaytona, netserver, network_block_all=True, **shape))
        assert probe(made[-1], f"{a}:80") == {f"{a}:80": "refused"}
        made.append(_adopted(netdaytona, netserver, **shape))
        assert fetch(made[-1], f"http://{a}/hello") == hello(a)
    finally:
        for sb in made:
            netdaytona.delete(sb)
