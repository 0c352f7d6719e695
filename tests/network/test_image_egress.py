"""Image builds reach package indexes: RUN steps have a sandbox's egress.

The official SDK's `Image.base(...).pip_install(..., index_url=...)` builds
against the test internet's package index (by name, through the build
sandbox's own policy resolver); the package lands in the image's system
site-packages and every new sandbox of the image has it. The build
sandbox's network is gone once the build ends.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.network.conftest import net_server
from tests.network.internet import FakeInternet
from tests.network.test_teardown import remains
from tests.serverproc import ServerProcess

HOST = "pkgs.internet.test"

# The first build of a session may build the Debian base.
pytestmark = pytest.mark.timeout(900)


def _index_of_gateway(gateway: str) -> int:
    return (int(ipaddress.ip_address(gateway)) - int(ipaddress.ip_address("100.72.0.0"))) // 4


def test_pip_install_in_a_build_reaches_the_index(netdaytona: Any, internet: FakeInternet) -> None:
    from daytona import CreateSandboxFromImageParams, Image

    internet.set_zone({HOST: [internet.addresses[2]]})
    internet.add_wheel("covebuildpkg", "2.0.1", "GREETING = 'built into the image'\n")
    image = (
        Image.base("python:3.11-slim")
        .pip_install(
            ["covebuildpkg"],
            index_url=f"http://{HOST}/simple",
            extra_options=f"--trusted-host {HOST}",
        )
        .run_commands("grep nameserver /etc/resolv.conf > /opt/build-nameserver")
    )
    logs: list[str] = []
    sb = netdaytona.create(
        CreateSandboxFromImageParams(image=image), timeout=900, on_snapshot_create_logs=logs.append
    )
    try:
        text = "\n".join(logs)
        assert "Successfully installed covebuildpkg-2.0.1" in text, text[-3000:]
        r = sb.process.exec(
            "python3 -c 'import covebuildpkg as m; print(m.GREETING); print(m.__file__)'"
        )
        assert r.exit_code == 0, r.result
        greeting, path = r.result.strip().splitlines()
        assert greeting == "built into the image"
        assert path.startswith("/usr/local/lib/python3.11/"), path  # system-wide, not ~/.local
        # The build's resolv.conf was bound over the image's, never written into a layer.
        build_ns = sb.fs.download_file("/opt/build-nameserver").decode().split()[1]
        own_ns = sb.process.exec("grep nameserver /etc/resolv.conf").result.split()[1]
        assert build_ns != own_ns
        index = _index_of_gateway(build_ns)
        claim = Path(f"/run/cove/net/{index}")
        taken = claim.exists() and not json.loads(claim.read_text())["sandbox"].startswith("build-")
        if not taken:  # (else a later sandbox took the released address)
            assert remains(index) == []
    finally:
        netdaytona.delete(sb)


@pytest.mark.skipif(
    os.environ.get("COVE_TEST_REAL_REGISTRIES") != "1",
    reason="opt-in: reaches Debian's mirror and PyPI (COVE_TEST_REAL_REGISTRIES=1)",
)
def test_debian_slim_against_the_real_registries() -> None:
    """The manual check: the SDK's own `debian_slim` (apt-get and pip steps) as a user runs it.

    The server's resolver is the host's (no COVE_NETWORK_DNS), so the build
    reaches the registries exactly as the host's own apt and pip would.
    """
    from daytona import CreateSandboxFromImageParams, Daytona, DaytonaConfig, Image

    with tempfile.TemporaryDirectory(prefix="cove-real-") as tmp:
        server = ServerProcess(Path(tmp) / "data", ["real-key"], env={"COVE_WARM_POOL": "0"})
        server.start(60)
        try:
            d = Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))
            logs: list[str] = []
            image = Image.debian_slim("3.11").pip_install(["six"])
            try:
                sb = d.create(
                    CreateSandboxFromImageParams(image=image),
                    timeout=1800,
                    on_snapshot_create_logs=logs.append,
                )
            except Exception as exc:
                raise AssertionError("\n".join(logs[-60:])) from exc
            try:
                r = sb.process.exec(
                    "python3 -c 'import six; print(six.__version__)'; gcc --version"
                )
                assert r.exit_code == 0, r.result
                assert "gcc" in r.result
            finally:
                d.delete(sb)
        finally:
            server.delete_all_sandboxes()
            server.stop()


def test_run_steps_trust_the_configured_ca_bundle(internet: FakeInternet) -> None:
    """A host behind a TLS-inspecting proxy: its CA bundle reaches RUN steps, not the image."""
    from daytona import CreateSandboxFromImageParams, Daytona, DaytonaConfig, Image

    pem = "-----BEGIN CERTIFICATE-----\nY292ZS10ZXN0LWNh\n-----END CERTIFICATE-----\n"
    with tempfile.TemporaryDirectory(prefix="cove-ca-") as tmp:
        bundle = Path(tmp) / "ca.pem"
        bundle.write_text(pem)
        env = {"COVE_WARM_POOL": "0", "COVE_BUILD_CA_BUNDLE": str(bundle)}
        server = net_server(tmp, internet, **env).start(60)
        try:
            d = Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))
            image = Image.base("python:3.11-slim").run_commands(
                'cat "$SSL_CERT_FILE" > /opt/seen-ca && echo "$PIP_CERT" > /opt/seen-var'
            )
            sb = d.create(CreateSandboxFromImageParams(image=image), timeout=900)
            try:
                assert sb.fs.download_file("/opt/seen-ca").decode() == pem
                seen = sb.fs.download_file("/opt/seen-var").decode().strip()
                assert seen == "/run/cove-build/ca-certificates.crt"
                # Nothing of it in the image: no file, no variable.
                r = sb.process.exec('ls -A /run/cove-build; echo "[$SSL_CERT_FILE]"')
                assert r.result.strip() == "[]", r.result
            finally:
                d.delete(sb)
        finally:
            server.delete_all_sandboxes()
            server.stop()
