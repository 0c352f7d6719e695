"""Package managers just work in the default environment when egress allows.

pip, git and npm run as the sandbox's user against the test internet's own
package index, git server and tarball, reached by name through the policy
resolver; pip's user install lands in the workspace with its scripts on PATH.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.network.internet import FakeInternet

HOST = "pkgs.internet.test"


@pytest.fixture(scope="module")
def sandbox(netdaytona: Any, internet: FakeInternet) -> Iterator[Any]:
    internet.set_zone({HOST: [internet.addresses[2]]})
    sb = netdaytona.create()
    try:
        yield sb
    finally:
        netdaytona.delete(sb)


def test_pip_install_from_an_index_lands_in_the_workspace(
    sandbox: Any, internet: FakeInternet
) -> None:
    internet.add_wheel("covetestpkg", "1.2.3", "GREETING = 'installed from the test index'\n")
    r = sandbox.process.exec(
        f"pip install --index-url http://{HOST}/simple --trusted-host {HOST} covetestpkg",
        timeout=120,
    )
    assert r.exit_code == 0, r.result
    assert "externally-managed" not in r.result
    r = sandbox.process.exec(
        "python3 -c 'import covetestpkg; print(covetestpkg.GREETING, covetestpkg.__file__)'"
    )
    greeting, path = r.result.strip().rsplit(" ", 1)
    assert greeting == "installed from the test index"
    assert path.startswith("/home/user/.local/lib/python3")


def test_git_clone_over_http(sandbox: Any, internet: FakeInternet) -> None:
    internet.add_git_repo("hello", {"README.md": "cloned over the test internet\n"})
    r = sandbox.process.exec(f"git clone -q http://{HOST}/git/hello.git && cat hello/README.md")
    assert r.exit_code == 0, r.result
    assert r.result.strip() == "cloned over the test internet"


def test_git_clone_through_the_official_sdk(sandbox: Any) -> None:
    sandbox.git.clone(f"http://{HOST}/git/hello.git", "/home/user/sdk-clone")
    assert sandbox.fs.download_file("/home/user/sdk-clone/README.md") == (
        b"cloned over the test internet\n"
    )


def test_npm_install_of_a_tarball_url(sandbox: Any, internet: FakeInternet) -> None:
    package = {"name": "cove-npm-test", "version": "1.0.0", "main": "index.js"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (
            ("package/package.json", json.dumps(package)),
            ("package/index.js", "module.exports = 'installed by npm';\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (internet.state / "index/packages/cove-npm-test-1.0.0.tgz").write_bytes(buf.getvalue())
    r = sandbox.process.exec(
        "mkdir -p app && cd app && npm install --no-audit --no-fund "
        f"http://{HOST}/packages/cove-npm-test-1.0.0.tgz >/dev/null 2>&1; "
        "node -e \"console.log(require('cove-npm-test'))\"",
        timeout=120,
    )
    assert r.result.strip() == "installed by npm", r.result
