"""The cap on connections all sandboxes hold together (issue 18): COVE_NETWORK_CONN_CAP.

Each sandbox has its own conntrack quota (`rules.CONN_LIMIT`), but many
sandboxes at their quotas could still fill the host's table. A server of its
own with a small cap: a bystander sandbox holds one connection open, two
others flood UDP flows to the test internet; together the three stay within
the cap, a new connection of any of them (the bystander too: the cap is
shared) is refused, while the bystander's open connection carries on and
the host's own loopback connections are untouched. The cap frees itself as
the flows expire. Traffic goes only to loopback and the test internet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daytona import Daytona, DaytonaConfig

from cove.runtime.local.net import rules
from cove.runtime.local.net.manager import NetworkManager
from tests.network.conftest import conntrack_entries, fetch, net_server, probe, sandbox_addresses
from tests.network.internet import FakeInternet
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess

CAP = 48
FLOWS = 40  # per flooder: each alone stays within its own quota and the cap

# Connects to the test internet's sink, sends, and stays connected in the
# background until the test writes to /tmp/held-go; then sends more, closes
# its side and passes the sink's byte count on through /tmp/held-answer.
HOLD = r"""
import os, socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=30)
s.sendall(b"a" * 1000)
if os.fork():
    os._exit(0)  # the parent's exit says "connected"
os.setsid()
with open("/tmp/held-go") as f:
    f.read()
s.sendall(b"b" * 1000)
s.shutdown(socket.SHUT_WR)
answer = s.recv(100)
with open("/tmp/held-answer", "w") as f:
    f.write(answer.decode())
"""

FLOOD = r"""
import socket, sys
target, flows = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(flows):  # one tracked flow per destination port
    try:
        s.sendto(b"x", (target, 20000 + i))
    except OSError:
        pass
print("sent")
"""


@pytest.fixture(scope="module")
def daytona(internet: FakeInternet) -> Iterator[Daytona]:
    with tempfile.TemporaryDirectory(prefix="cove-conncap-") as tmp:
        env = {"COVE_NETWORK_CONN_CAP": str(CAP), "COVE_WARM_POOL": "0"}
        server: ServerProcess = net_server(tmp, internet, **env).start(120)
        try:
            yield Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))
        finally:
            server.delete_all_sandboxes()
            server.stop()


def run(sandbox: Any, script: str, *args: str) -> str:
    sandbox.fs.upload_file(script.encode(), "/tmp/script.py")
    r = sandbox.process.exec("python3 /tmp/script.py " + " ".join(args), timeout=60)
    assert r.exit_code == 0, r.result
    return str(r.result)


@pytest.mark.timeout(400)  # three sandboxes and a wait for flows to expire, under load
def test_sandboxes_together_stay_within_the_cap_and_the_host_carries_on(
    daytona: Daytona, internet: FakeInternet
) -> None:
    assert FLOWS < rules.CONN_LIMIT and FLOWS < CAP < 2 * FLOWS  # the cap is what binds
    a, b, sink = internet.addresses
    bystander, first, second = daytona.create(), daytona.create(), daytona.create()
    try:
        bystander.process.exec("mkfifo /tmp/held-go /tmp/held-answer")
        run(bystander, HOLD, sink)
        for flooder in (first, second):
            run(flooder, FLOOD, sink, str(FLOWS))
        addresses = [sandbox_addresses(sb)[0] for sb in (bystander, first, second)]
        tracked = [conntrack_entries(addr, exclude_dst="") for addr in addresses]
        assert tracked[0] >= 1, tracked  # the bystander's open connection
        assert sum(tracked) <= CAP, tracked  # the three together, within the cap
        assert tracked[1] == FLOWS and sum(tracked) >= CAP - 2, tracked  # reached, not short
        # Any new connection of theirs meets the cap, the bystander's too ...
        for sb in (first, second, bystander):
            assert probe(sb, f"{a}:80") == {f"{a}:80": "refused"}
        # ... while the host's own loopback connections go on ...
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            for _ in range(CAP + 10):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                listener.accept()[0].close()
        # ... and so does the bystander's open connection.
        r = bystander.process.exec("echo go > /tmp/held-go && cat /tmp/held-answer", timeout=60)
        assert r.result.strip() == "2000", r.result
        # The cap frees itself as the flows expire (UDP: 30 s unanswered).
        wait_for(
            lambda: fetch(first, f"http://{b}/hello") == f"hello from {b}",
            150,
            "the sandboxes to get the cap back",
            interval=2,
        )
    finally:
        for sb in (bystander, first, second):
            daytona.delete(sb)


def cap_rules(instance: str) -> list[str]:
    """The rules of the control plane's cap chain, with their handles."""
    cmd = ["nft", "-a", "list", "chain", "inet", "cove", rules.cap_chain(instance)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if "ct count" in line]


def test_a_restarted_control_plane_keeps_its_cap_and_a_changed_cap_replaces_it(
    internet: FakeInternet,  # the network tests' preconditions (root, nftables)
) -> None:
    instance = f"t{os.getpid()}"
    rules.ensure_table()
    try:
        rules.ensure_cap(instance, 7)
        first = cap_rules(instance)
        rules.ensure_cap(instance, 7)  # a restart with the same setting: the same rule
        assert cap_rules(instance) == first and len(first) == 1, first
        assert "ct count over 7 goto refuse" in first[0]
        rules.ensure_cap(instance, 8)
        changed = cap_rules(instance)
        assert len(changed) == 1 and "ct count over 8 goto refuse" in changed[0], changed
        assert changed != first
    finally:
        rules.remove_cap(instance)
        rules.remove_table_if_unused()
    max_entries = int(Path(rules.CONNTRACK_MAX).read_text())
    assert rules.default_cap() == max_entries // 2


def test_a_negative_cap_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="COVE_NETWORK_CONN_CAP must be 0"):
        NetworkManager("t-negative", ("127.0.0.1", 53), conn_cap=-1)


def test_a_table_checked_once_is_only_looked_for_after_that(
    internet: FakeInternet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing the table or a chain dumps every sandbox's sets and elements: checked
    at every create it cost ~100 ms of the kernel's time with 250 sandboxes."""
    rules.ensure_table()
    try:
        seen: list[list[str]] = []
        real = subprocess.run

        def spy(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
            seen.append(list(cmd))
            return real(cmd, *args, **kwargs)

        monkeypatch.setattr(rules.subprocess, "run", spy)
        assert rules.ensure_table() is False
        assert seen == [["nft", "list", "map", "inet", "cove", "caps"]]
    finally:
        monkeypatch.undo()
        rules.remove_table_if_unused()
