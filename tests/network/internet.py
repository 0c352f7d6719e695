"""A test "internet" in a network namespace the test makes (root only).

Address range: 198.18.0.0/15 (RFC 2544 benchmarking), which nothing on the
test hosts routes (their routes: a 192.0.2.0/24 uplink, a resolver at
10.255.255.53, fd00::/64). Each instance takes one 198.18.N.0/24: the host
side is .1, the services answer on .2 (also the DNS server), .3 and .4. It
is reached from the host by a direct route only; nothing is NATed or routed
for the host, and the namespace is removed at exit.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SERVICES = Path(__file__).with_name("internet_services.py")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class FakeInternet:
    def __init__(self) -> None:
        n = os.getpid() % 200 + 20
        self.netns = f"covetest-inet-{n}"
        self.host_if = f"ti-{n}"
        self.host_side = f"198.18.{n}.1"
        self.addresses = [f"198.18.{n}.{i}" for i in (2, 3, 4)]
        self.dns = self.addresses[0]
        self._tmp = tempfile.TemporaryDirectory(prefix="cove-inet-")
        self.state = Path(self._tmp.name)
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> FakeInternet:
        self._remove()
        _ip("netns", "add", self.netns)
        peer = ("peer", "name", "eth0", "netns", self.netns)
        _ip("link", "add", self.host_if, "type", "veth", *peer)
        _ip("addr", "add", f"{self.host_side}/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        for a in self.addresses:
            _ip("-n", self.netns, "addr", "add", f"{a}/24", "dev", "eth0")
        _ip("-n", self.netns, "link", "set", "eth0", "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")
        for sub in ("index/simple", "index/packages", "git"):
            (self.state / sub).mkdir(parents=True)
        self.set_zone({})
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "/usr/bin/python3", str(SERVICES), str(self.state)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready or self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("the test internet's services did not start")
        return self

    def set_zone(self, names: dict[str, list[str]], ttl: int = 60) -> None:
        """What the DNS server answers, from the next query on."""
        tmp = self.state / "zone.tmp"
        tmp.write_text(json.dumps({**names, "_ttl": ttl}))
        tmp.rename(self.state / "zone.json")

    def add_wheel(self, name: str, version: str, module_source: str) -> str:
        """A pure-Python wheel of module `name`, served by the index; its filename."""
        dist = f"{name}-{version}"
        files = {
            f"{name}.py": module_source.encode(),
            f"{dist}.dist-info/METADATA": (
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            ).encode(),
            f"{dist}.dist-info/WHEEL": (
                b"Wheel-Version: 1.0\nGenerator: cove-tests\nRoot-Is-Purelib: true\n"
                b"Tag: py3-none-any\n"
            ),
        }
        record = ""
        for path, data in files.items():
            digest = hashlib.sha256(data).digest()
            import base64

            b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            record += f"{path},sha256={b64},{len(data)}\n"
        record += f"{dist}.dist-info/RECORD,,\n"
        files[f"{dist}.dist-info/RECORD"] = record.encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for path, data in files.items():
                z.writestr(path, data)
        wheel = f"{dist}-py3-none-any.whl"
        (self.state / "index/packages" / wheel).write_bytes(buf.getvalue())
        page = self.state / "index/simple" / name
        page.mkdir(exist_ok=True)
        (page / "index.html").write_text(
            f'<html><body><a href="/packages/{wheel}">{wheel}</a></body></html>\n'
        )
        return wheel

    def add_git_repo(self, name: str, files: dict[str, str]) -> None:
        """A bare repository `name`.git with one commit of `files`."""
        work = self.state / f"work-{name}"
        work.mkdir()
        for path, text in files.items():
            (work / path).write_text(text)
        env = dict(
            os.environ,
            GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@t",
        )  # fmt: skip
        for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "init"]):
            subprocess.run(["git", *cmd], cwd=work, env=env, check=True)
        bare = self.state / "git" / f"{name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        self._remove()
        self._tmp.cleanup()

    def _remove(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.host_if], capture_output=True)


def can_run() -> str | None:
    """None if the test internet can be made here, else the reason to skip."""
    if os.geteuid() != 0:
        return "network tests need root (network namespaces, veth pairs, nftables)"
    for tool in ("ip", "nft"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"network tests need `{tool}` (scripts/system-deps.sh installs it)"
    return None


if __name__ == "__main__":  # a manual check: start, print, wait for Enter
    inet = FakeInternet().start()
    print(inet.netns, inet.addresses, file=sys.stderr)
    input()
    inet.stop()
