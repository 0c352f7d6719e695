"""Root inside the sandbox, never on the host: an image that says `USER root`.

Its sandboxes are uid 0 in their own user namespace and own the image's
files through ID-mapped mounts of its layers, so a package manager installs
system-wide (dpkg here, with a package built in the sandbox: no network);
the change lands in that sandbox's own upper layer and no other sandbox of
the image sees it. Images without `USER root` keep the unprivileged user.
A chown to an id the one-id namespace cannot map is a successful no-op
(image files have one owner), so package scripts that give files to other
users do not fail.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(900)  # the first image of a fresh machine builds its base

ROOT_IMAGE = """\
FROM python:3.11-slim
RUN echo image-file > /etc/cove-root-test
RUN touch /etc/given-away && chown 1234:staff /etc/given-away
USER root
"""

MAKE_AND_INSTALL_DEB = r"""
set -e
mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/share/covetest
printf 'Package: covetest\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n' \
  > /tmp/pkg/DEBIAN/control
echo installed-by-dpkg > /tmp/pkg/usr/share/covetest/marker
dpkg-deb --build /tmp/pkg /tmp/covetest.deb >/dev/null
dpkg -i /tmp/covetest.deb >/dev/null
dpkg -s covetest | grep '^Status'
cat /usr/share/covetest/marker
"""


def _create(daytona: Any) -> Any:
    from daytona import CreateSandboxFromImageParams, Image

    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as f:
        f.write(ROOT_IMAGE)
        f.flush()
        image = Image.from_dockerfile(f.name)
    return daytona.create(CreateSandboxFromImageParams(image=image), timeout=900)


@pytest.fixture(scope="module")
def pair(daytona: Any) -> Iterator[tuple[Any, Any]]:
    first = _create(daytona)
    try:
        second = _create(daytona)
        try:
            yield first, second
        finally:
            daytona.delete(second)
    finally:
        daytona.delete(first)


def test_the_sandbox_is_root_and_owns_the_image(pair: tuple[Any, Any]) -> None:
    sb, _ = pair
    r = sb.process.exec("id -u; whoami; stat -c %u:%g /usr/bin /etc/cove-root-test")
    assert r.result.split() == ["0", "root", "0:0", "0:0"], r.result
    r = sb.process.exec("echo changed >> /etc/cove-root-test && cat /etc/cove-root-test")
    assert r.result.split() == ["image-file", "changed"], r.result
    # chown to ids the namespace cannot map (a postinst giving /usr/local/share
    # to group staff) succeeds without effect, in the build (above) and here.
    r = sb.process.exec("chown 1234:staff /etc/cove-root-test && stat -c %u:%g /etc/cove-root-test")
    assert r.result.strip() == "0:0", r.result


def test_a_package_install_is_system_wide_and_stays_in_its_sandbox(pair: tuple[Any, Any]) -> None:
    first, second = pair
    r = first.process.exec(f"sh -c {_quote(MAKE_AND_INSTALL_DEB)}", timeout=120)
    assert r.exit_code == 0, r.result
    assert r.result.split("\n")[:2] == ["Status: install ok installed", "installed-by-dpkg"]
    # The other sandbox of the same image: the shared layers were not written.
    r = second.process.exec(
        "dpkg -s covetest >/dev/null 2>&1 && echo installed || echo absent; "
        "cat /usr/share/covetest/marker 2>&1; cat /etc/cove-root-test"
    )
    lines = r.result.split("\n")
    assert lines[0] == "absent", r.result
    assert "No such file" in lines[1]
    assert lines[2] == "image-file"


def test_root_means_root_of_its_namespace_only(pair: tuple[Any, Any]) -> None:
    sb, _ = pair
    # No capability over the host: the host's mounts and kernel settings stay out of reach.
    r = sb.process.exec(
        "grep -E '^(Uid|CapEff)' /proc/self/status; "
        "mount -t tmpfs none /mnt 2>&1 && echo mounted-in-own-ns; "
        "echo 1 > /proc/sys/kernel/sysrq 2>&1 || echo sysctl-refused"
    )
    assert "sysctl-refused" in r.result, r.result


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
