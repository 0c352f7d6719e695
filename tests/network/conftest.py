"""Fixtures for the network tests: a test internet, a server whose sandboxes reach it.

Traffic goes only to loopback and to the namespace `FakeInternet` makes; the
server's policy resolver forwards to that namespace's DNS server, never to
the host's resolver.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.network.internet import FakeInternet, can_run
from tests.serverproc import ServerProcess

NET_KEY = "net-key"


@pytest.fixture(scope="session")
def internet() -> Iterator[FakeInternet]:
    reason = can_run()
    if reason:
        pytest.skip(reason)
    inet = FakeInternet().start()
    try:
        yield inet
    finally:
        inet.stop()


def net_server(tmp: str, internet: FakeInternet, **env: str) -> ServerProcess:
    return ServerProcess(
        Path(tmp) / "data", [NET_KEY], env={"COVE_NETWORK_DNS": internet.dns, **env}
    )


@pytest.fixture(scope="session")
def netserver(internet: FakeInternet) -> Iterator[ServerProcess]:
    """Warm pool on (the default): pooled sandboxes take their policy at adoption."""
    with tempfile.TemporaryDirectory(prefix="cove-net-") as tmp:
        proc = net_server(tmp, internet).start(120)
        try:
            yield proc
        finally:
            proc.delete_all_sandboxes()
            proc.stop()


@pytest.fixture(scope="session")
def netdaytona(netserver: ServerProcess) -> Any:
    from daytona import Daytona, DaytonaConfig

    return Daytona(DaytonaConfig(api_key=netserver.key, api_url=netserver.api_url))


PROBE = r"""
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    s = socket.socket()
    s.settimeout(4)
    try:
        s.connect((host, int(port)))
        out[target] = "open"
    except ConnectionRefusedError:
        out[target] = "refused"
    except OSError as exc:
        out[target] = type(exc).__name__ + ":" + str(exc.errno)
    finally:
        s.close()
print(json.dumps(out))
"""


def probe(sandbox: Any, *targets: str) -> dict[str, str]:
    """Whether each HOST:PORT accepts a TCP connection from inside `sandbox`."""
    sandbox.fs.upload_file(PROBE.encode(), "/tmp/probe.py")
    r = sandbox.process.exec("python3 /tmp/probe.py " + " ".join(targets), timeout=60)
    assert r.exit_code == 0, r.result
    return dict(json.loads(r.result.strip().splitlines()[-1]))


def fetch(sandbox: Any, url: str) -> str:
    """curl's body for `url`, or `curl-failed:CODE`."""
    r = sandbox.process.exec(f"curl -sS -m 5 {url} || echo curl-failed:$?", timeout=30)
    return str(r.result).strip()


LISTEN = r"""
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
if os.fork():
    os._exit(0)  # the parent's exit says "listening"
os.setsid()
while True:
    c, _ = s.accept()
    c.close()
"""


def listen(sandbox: Any, port: int) -> str:
    """A TCP listener on every address of `sandbox` (up when this returns); its eth0 address."""
    sandbox.fs.upload_file(LISTEN.encode(), "/tmp/listen.py")
    r = sandbox.process.exec(
        f"python3 /tmp/listen.py {port} </dev/null >/dev/null 2>&1; ip -4 -o addr show eth0",
        timeout=30,
    )
    return str(r.result.split()[3].split("/")[0])


def sandbox_addresses(sandbox: Any) -> tuple[str, str]:
    """The sandbox's eth0 address and its gateway (the veth pair's host side)."""
    r = sandbox.process.exec("ip -4 -o addr show eth0; ip -4 route show default")
    lines = r.result.strip().splitlines()
    return lines[0].split()[3].split("/")[0], lines[1].split()[2]


def conntrack_entries(src: str, exclude_dst: str) -> int:
    """Tracked flows from `src` on the host (not those to `exclude_dst`)."""
    count = 0
    with open("/proc/net/nf_conntrack") as f:
        for line in f:
            fields = line.split()
            first_src = next((x for x in fields if x.startswith("src=")), "")
            first_dst = next((x for x in fields if x.startswith("dst=")), "")
            if first_src == f"src={src}" and first_dst != f"dst={exclude_dst}":
                count += 1
    return count
