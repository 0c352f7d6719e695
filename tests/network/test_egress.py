"""Default egress, DNS, and isolation that no policy can undo (official SDK, real sandboxes)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from daytona import CreateSandboxFromSnapshotParams

from tests.network.conftest import fetch, listen, probe
from tests.network.internet import FakeInternet
from tests.serverproc import ServerProcess

METADATA = "169.254.169.254"


def host_ipv4_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    return [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def host_listener() -> Iterator[int]:
    """A port open on every host address: reaching it from a sandbox would be a leak."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen(64)
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox(netdaytona: Any) -> Iterator[Any]:
    sb = netdaytona.create()
    try:
        yield sb
    finally:
        netdaytona.delete(sb)


def test_default_egress_reaches_the_test_internet_by_address_and_name(
    sandbox: Any, internet: FakeInternet
) -> None:
    internet.set_zone({"www.default.test": [internet.addresses[1]]})
    assert fetch(sandbox, f"http://{internet.addresses[0]}/hello") == (
        f"hello from {internet.addresses[0]}"
    )
    assert fetch(sandbox, "http://www.default.test/hello") == f"hello from {internet.addresses[1]}"
    assert sandbox.network_block_all is False


def test_resolv_conf_names_the_policy_resolver_and_the_ca_bundle_is_there(sandbox: Any) -> None:
    r = sandbox.process.exec("cat /etc/resolv.conf; ip -4 route show default")
    lines = r.result.split("\n")
    gateway = lines[0].split()[1]
    assert gateway.startswith("100.72.")
    assert f"default via {gateway} dev eth0" in r.result
    r = sandbox.process.exec("test -s /etc/ssl/certs/ca-certificates.crt && echo bundle")
    assert r.result.strip() == "bundle"


def test_ipv6_is_off_on_eth0_and_loopback_keeps_both_families(sandbox: Any) -> None:
    r = sandbox.process.exec("ip -6 addr show eth0; ip -6 addr show lo | grep -c 'inet6 ::1'")
    assert r.result.strip() == "1"
    code = (
        "import socket\n"
        "for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
        "    s = socket.socket(fam); s.bind((host, 0)); s.listen(1)\n"
        "    c = socket.create_connection((host, s.getsockname()[1])); print(host, 'ok')\n"
    )
    assert sandbox.process.code_run(code).result.split("\n")[:2] == ["127.0.0.1 ok", "::1 ok"]


def test_nothing_inside_holds_cap_net_admin(sandbox: Any) -> None:
    r = sandbox.process.exec(
        "grep CapEff /proc/self/status; ip link set eth0 down 2>&1;"
        " ip addr add 10.9.9.9/32 dev eth0 2>&1; nft list ruleset 2>&1; ip -4 addr show eth0",
        timeout=30,
    )
    out = r.result
    assert "CapEff:\t0000000000000000" in out
    assert out.count("Operation not permitted") >= 2, out
    assert "10.9.9.9" not in out
    assert "table inet cove" not in out


POLICIES: dict[str, dict[str, Any]] = {
    "default": {},
    "allow-everything-by-cidr": {"network_allow_list": "0.0.0.0/0"},
    "domains": {"domain_allow_list": "*.test"},
    "block-all": {"network_block_all": True},
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_host_control_plane_neighbours_and_metadata_are_refused_under_every_policy(
    policy: str,
    netdaytona: Any,
    netserver: ServerProcess,
    internet: FakeInternet,
    host_listener: int,
) -> None:
    neighbour = netdaytona.create()
    sb = netdaytona.create(CreateSandboxFromSnapshotParams(**POLICIES[policy]))
    try:
        n_addr = listen(neighbour, 8000)
        assert probe(neighbour, "127.0.0.1:8000")["127.0.0.1:8000"] == "open"
        targets = [f"{a}:{host_listener}" for a in host_ipv4_addresses() if a != "127.0.0.1"]
        targets += [f"{a}:{netserver.port}" for a in host_ipv4_addresses() if a != "127.0.0.1"]
        targets += [f"{METADATA}:80", f"{n_addr}:8000", f"{internet.host_side}:{host_listener}"]
        seen = probe(sb, *targets)
        assert all(v != "open" for v in seen.values()), seen
        # The sandbox's own loopback is its own, not the host's.
        assert probe(sb, f"127.0.0.1:{netserver.port}")[f"127.0.0.1:{netserver.port}"] != "open"
    finally:
        netdaytona.delete(sb)
        netdaytona.delete(neighbour)


def test_inbound_connections_to_a_sandbox_are_impossible(sandbox: Any) -> None:
    addr = listen(sandbox, 8001)
    assert probe(sandbox, "127.0.0.1:8001")["127.0.0.1:8001"] == "open"
    with socket.socket() as s:
        s.settimeout(2)
        with pytest.raises(OSError):
            s.connect((addr, 8001))
