"""Launching a sandbox's agent under bubblewrap: the command line and the uid drop.

Namespaces (user, PID, mount, net, IPC, UTS, cgroup), the filesystem view
of `fs`, the seccomp filter of `seccomp`, and the agent as PID 1 in its own
session, so that it outlives the control plane that started it. This module
knows nothing of sandbox ids, records or pools: any backend that runs the
local isolation on a host (the local one; each node of the ray one) calls
`spawn_agent` with a `Launch`.

Never `bwrap --uid` as root: uid 0 outside would map through and root-owned
files bound in would become readable. The child drops to the sandbox's own
unprivileged host uid first (after joining its cgroups as root), then execs
bwrap.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from cove.runtime.local import fs, imagefs
from cove.runtime.local.cgroups import SandboxCgroups
from cove.runtime.local.net import links
from cove.wire.errors import SandboxError


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def require() -> str:
    """bwrap's path, or a SandboxError that says how to install it."""
    path = bwrap_path()
    if path is None:
        raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    return path


@dataclass
class Launch:
    """One agent run: host paths to bind, the uid to become, the limits already made."""

    uid: int
    home: str
    control: str
    lib: str  # the staged cove package (put on the agent's PYTHONPATH)
    runtime: str | None  # the read-only runtime environment, if there is one
    seccomp: bytes
    # /tmp is tmpfs charged to the user's memory: callers pass half the limit,
    # so a full /tmp still leaves room to run `rm`.
    tmp_bytes: int
    cgroups: SandboxCgroups | None = None
    config: str = f"{fs.CONTROL}/agent.json"  # the agent's config, as the sandbox sees it
    # A network namespace made by the control plane (net/links.py) to run in,
    # with the resolv.conf naming its policy resolver; None: a private
    # namespace with loopback only.
    netns: str | None = None
    resolv_conf: bytes | None = None
    image: imagefs.ImageRoot | None = None  # None: the host's /usr as root (the default)
    # A build step instead of the agent: its argv and whole environment, run as
    # `inside_uid` (0 for builds: root in the sandbox's user namespace, with
    # capabilities there only), with read-only binds {inside path: host path}.
    command: list[str] | None = None
    env: dict[str, str] | None = None
    inside_uid: int = fs.SANDBOX_UID
    ro_binds: dict[str, str] = field(default_factory=dict)
    # Read-only files {path: content}, each on a tmpfs over its directory
    # (which must exist in the root: image roots have /run/cove-build).
    extra_files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Spawned:
    """The started bwrap process and the read ends of its two start-up pipes."""

    popen: subprocess.Popen[bytes]
    ready_fd: int  # the agent writes "ready\n" once it serves
    info_fd: int  # bwrap writes {"child-pid": N, ...}: the agent's host pid


def command(launch: Launch, fa: fs.FdArgs, ready_w: int, info_w: int) -> list[str]:
    """The full bwrap argv (descriptors it names are opened into `fa`)."""
    inside = str(launch.inside_uid)
    fa.args = [
        require(), "--unshare-user", "--uid", inside, "--gid", inside,
        "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--hostname", "sandbox", "--disable-userns",
        "--as-pid-1", "--new-session", "--clearenv",
    ]  # fmt: skip
    if launch.netns is None:
        fa.args.append("--unshare-net")
    if launch.inside_uid == 0:
        fa.args += ["--cap-add", "ALL"]
    env = launch.env
    if env is None:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": fs.HOME, "LANG": "C.UTF-8",
            "PYTHONPATH": fs.LIB, "PYTHONDONTWRITEBYTECODE": "1",
        }  # fmt: skip
    for name, value in env.items():
        fa.args += ["--setenv", name, value]
    if launch.image is None:
        fs.host_root_args(fa)
        python = [fs.AGENT_PYTHON]
    else:
        imagefs.filesystem_args(fa, launch.image)
        python = imagefs.agent_argv()
    fs.sandbox_args(
        fa,
        home=launch.home,
        control=launch.control,
        lib=launch.lib,
        runtime=launch.runtime,
        cgroup_binds=launch.cgroups.binds() if launch.cgroups else {},
        tmp_bytes=launch.tmp_bytes,
    )
    if launch.resolv_conf is not None and launch.image is not None:
        # An image's /etc is not the sandbox's to write: bind over its resolv.conf.
        data = fa.data_fd(launch.resolv_conf)
        fa.args += ["--perms", "0644", "--ro-bind-data", data, "/etc/resolv.conf"]
    elif launch.resolv_conf is not None:
        fa.args += ["--file", fa.data_fd(launch.resolv_conf), "/etc/resolv.conf"]
    for inside_path, host_path in launch.ro_binds.items():
        fa.args += ["--ro-bind-fd", fa.path_fd(host_path), inside_path]
    for directory in sorted({os.path.dirname(p) for p in launch.extra_files}):
        fa.args += ["--tmpfs", directory]
    for inside_path, content in launch.extra_files.items():
        fa.args += ["--perms", "0644", "--ro-bind-data", fa.data_fd(content), inside_path]
    fa.args += ["--seccomp", fa.data_fd(launch.seccomp), "--info-fd", str(info_w)]
    if launch.command is not None:
        return [*fa.args, *launch.command]
    # -S: the agent needs no site-packages; skipping `site` is ~3 ms a start.
    fa.args += [
        *python, "-s", "-S", "-m", "cove.agent",
        launch.config, "--ready-fd", str(ready_w),
    ]  # fmt: skip
    return fa.args


async def spawn_agent(launch: Launch, log_fd: int) -> Spawned:
    """Start bwrap with the agent inside; its stdout and stderr go to `log_fd`.

    Returns at once: the caller awaits the ready and info pipes.
    """
    fa = fs.FdArgs()
    ready_r, ready_w = os.pipe()
    info_r, info_w = os.pipe()
    uid = launch.uid
    join = launch.cgroups.launcher_procs() if launch.cgroups else []
    netns_fd = os.open(launch.netns, os.O_RDONLY | os.O_CLOEXEC) if launch.netns else -1

    def become_sandbox() -> None:  # in the child: join netns and cgroups as root, then drop
        if netns_fd >= 0:
            links.setns(netns_fd)
        for path in join:
            with open(path, "w") as f:
                f.write("0")
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    try:
        args = command(launch, fa, ready_w, info_w)
        # In a thread: the child joins v1 cgroups before exec, and each
        # cgroup.procs write can take milliseconds (an RCU sync); on the
        # event loop that serialized every concurrent create behind it.
        popen = await asyncio.to_thread(
            subprocess.Popen,
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=[*fa.fds, ready_w, info_w],
            start_new_session=True,
            preexec_fn=become_sandbox,
        )
    except BaseException:
        os.close(ready_r)
        os.close(info_r)
        raise
    finally:
        fa.close()
        if netns_fd >= 0:
            os.close(netns_fd)
        os.close(ready_w)
        os.close(info_w)
    return Spawned(popen, ready_r, info_r)
