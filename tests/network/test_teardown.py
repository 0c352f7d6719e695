"""Nothing of a sandbox's network is left behind: after delete, and after a server SIGKILL."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

from tests.network.conftest import fetch, net_server
from tests.network.internet import FakeInternet
from tests.serverproc import ServerProcess


def index_of(sandbox: Any) -> int:
    r = sandbox.process.exec("ip -4 -o addr show eth0")
    addr = ipaddress.ip_address(r.result.split()[3].split("/")[0])
    return (int(addr) - int(ipaddress.ip_address("100.72.0.0"))) // 4


def remains(index: int) -> list[str]:
    """What is left of the network numbered `index`: namespace, interface, rules, claim."""
    left = []
    if os.path.exists(f"/run/netns/cove-{index}"):
        left.append("netns")
    if os.path.exists(f"/sys/class/net/cv-{index}"):
        left.append("interface")
    chains = subprocess.run(["nft", "list", "chains", "inet"], capture_output=True, text=True)
    if f"chain sb{index} " in chains.stdout:
        left.append("chain")
    sets = subprocess.run(["nft", "list", "sets", "inet"], capture_output=True, text=True)
    if f"set sb{index}_" in sets.stdout:
        left.append("sets")
    if os.path.exists(f"/run/cove/net/{index}"):
        left.append("claim")
    return left


@pytest.fixture
def own(internet: FakeInternet) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="cove-net-own-") as tmp:
        proc = net_server(tmp, internet, COVE_WARM_POOL="0").start()
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


def sdk(server: ServerProcess) -> Daytona:
    return Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))


def test_delete_removes_namespace_interface_rules_and_claim(netdaytona: Any) -> None:
    sb = netdaytona.create(CreateSandboxFromSnapshotParams(domain_allow_list="*.test"))
    index = index_of(sb)
    assert remains(index) == ["netns", "interface", "chain", "sets", "claim"]
    netdaytona.delete(sb)
    assert remains(index) == []


def test_stop_releases_the_network_and_start_brings_it_back(
    netdaytona: Any, internet: FakeInternet
) -> None:
    a = internet.addresses[0]
    sb = netdaytona.create()
    try:
        index = index_of(sb)
        sb.stop()
        assert remains(index) == []
        sb.start()
        assert fetch(sb, f"http://{a}/hello") == f"hello from {a}"
    finally:
        netdaytona.delete(sb)


def test_after_sigkill_a_restarted_server_serves_dns_again_then_deletes_cleanly(
    own: ServerProcess, internet: FakeInternet
) -> None:
    internet.set_zone({"after.restart.test": [internet.addresses[1]]})
    d = sdk(own)
    sb = d.create(CreateSandboxFromSnapshotParams(domain_allow_list="after.restart.test"))
    index = index_of(sb)
    own.kill9()
    assert remains(index) == ["netns", "interface", "chain", "sets", "claim"]
    own.start()
    d = sdk(own)
    sb = d.get(sb.id)
    want = f"hello from {internet.addresses[1]}"
    assert fetch(sb, "http://after.restart.test/hello") == want
    d.delete(sb)
    assert remains(index) == []


def test_a_restarted_server_removes_networks_no_record_knows(
    own: ServerProcess, internet: FakeInternet
) -> None:
    sb = sdk(own).create()
    index = index_of(sb)
    own.kill9()
    for suffix in ("", "-wal", "-shm"):  # the records are lost; the network is still there
        Path(f"{own.data_dir}/cove.db{suffix}").unlink(missing_ok=True)
    assert remains(index) == ["netns", "interface", "chain", "sets", "claim"]
    own.start()
    assert remains(index) == []
