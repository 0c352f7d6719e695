"""What a sandbox sees of the host filesystem (bubblewrap arguments).

Host `/usr` read-only, a few harmless `/etc` files, generated passwd/group/
hosts, a private `/tmp`, `/proc`, `/dev`, the workspace and the agent's
control directory. Directories are bound by file descriptor (opened here, as
root), because the data directory may sit under a path the sandbox's
unprivileged uid cannot traverse (e.g. /root/.cache).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

SANDBOX_UID = 1000
SANDBOX_USER = "user"
HOME = "/home/user"
CONTROL = "/run/cove"
CGROUP = "/run/cove-cgroup"
LIB = "/opt/cove/lib"
RUNTIME = "/opt/cove/runtime"
AGENT_PYTHON = "/usr/bin/python3"  # Debian's: readable inside the sandbox
JOIN_SHELL = "/usr/bin/sh"  # the host's, read-only inside: see cove.agent.proc.spawn

# /etc entries programs commonly need and that hold nothing about the host.
ETC_ALLOW = (
    "alternatives", "ssl", "ca-certificates", "ca-certificates.conf", "localtime",
    "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "mime.types",
    "bash.bashrc", "profile", "profile.d", "inputrc", "os-release", "debian_version",
    "terminfo", "environment", "login.defs", "timezone", "protocols", "services",
    "python3", "python3.11", "magic", "papersize", "fonts", "ImageMagick-6",
)  # fmt: skip


def _passwd() -> bytes:
    return (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:Sandbox user:{HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ).encode()


def _group() -> bytes:
    return f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_UID}:\nnogroup:x:65534:\n".encode()


HOSTS = b"127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n"


@dataclass
class FdArgs:
    """bwrap arguments plus the descriptors they name (closed by `close`)."""

    args: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def path_fd(self, path: str) -> str:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        self.fds.append(fd)
        return str(fd)

    def data_fd(self, data: bytes) -> str:
        fd = os.memfd_create("cove-data", 0)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        self.fds.append(fd)
        return str(fd)

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def filesystem_args(
    fa: FdArgs,
    *,
    home: str,
    control: str,
    lib: str,
    runtime: str | None,
    cgroup_binds: dict[str, str],
    tmp_bytes: int,
) -> None:
    host_root_args(fa)
    sandbox_args(
        fa,
        home=home,
        control=control,
        lib=lib,
        runtime=runtime,
        cgroup_binds=cgroup_binds,
        tmp_bytes=tmp_bytes,
    )


def host_root_args(fa: FdArgs) -> None:
    """The default root: the host's /usr and a few harmless /etc files (no image)."""
    a = fa.args
    a += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = f"/{name}"
        if os.path.islink(host):
            a += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            a += ["--ro-bind", host, host]
    a += ["--dir", "/etc"]
    for name in ETC_ALLOW:
        if os.path.exists(f"/etc/{name}"):
            a += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for path, data in (
        ("/etc/passwd", _passwd()),
        ("/etc/group", _group()),
        ("/etc/hosts", HOSTS),
        ("/etc/hostname", b"sandbox\n"),
    ):
        a += ["--file", fa.data_fd(data), path]


def sandbox_args(
    fa: FdArgs,
    *,
    home: str,
    control: str,
    lib: str,
    runtime: str | None,
    cgroup_binds: dict[str, str],
    tmp_bytes: int,
) -> None:
    """What every sandbox has whatever its root: proc, dev, tmp, workspace, control, agent."""
    a = fa.args
    a += ["--proc", "/proc", "--dev", "/dev"]
    a += ["--size", str(tmp_bytes), "--tmpfs", "/tmp", "--dir", "/var/tmp"]
    a += ["--bind-fd", fa.path_fd(home), HOME]
    a += ["--bind-fd", fa.path_fd(control), CONTROL]
    a += ["--ro-bind-fd", fa.path_fd(lib), LIB]
    if runtime and os.path.isdir(runtime):
        a += ["--ro-bind-fd", fa.path_fd(runtime), RUNTIME]
    for name, host_path in cgroup_binds.items():
        a += ["--bind-fd", fa.path_fd(host_path), f"{CGROUP}/{name}"]
    a += ["--chdir", HOME]
