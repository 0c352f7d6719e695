"""One image build step (a RUN, a COPY) in a build sandbox: same isolation as any sandbox.

The step runs under bubblewrap with the same namespaces, seccomp filter and
cgroup limits as a sandbox, on an overlay of the image so far with a fresh
upper directory; that upper directory, once the step exits 0, is the new
layer. What a step writes (that upper directory, its home and control
directories) lives on a disk of its own of `Step.disk_bytes`, made like a
sandbox's (`disk`): a RUN that writes past it fails with ENOSPC inside, the
host's filesystem is untouched, and the loop device goes with its mounts
in `discard`. A RUN step has the egress of a sandbox with the default policy (a
namespace, rules and policy resolver of its own from the backend's
`NetworkManager`), so apt-get and pip reach the registries the host reaches;
the host's proxy variables, if the control plane has any, and the CA
bundle the host's pip trusts (or COVE_BUILD_CA_BUNDLE: a host behind a
TLS-inspecting proxy) are passed on without becoming part of the layer.
Inside, the step is root of its user namespace, which maps to the host's
`IMAGE_UID` (the owner of image files) and nothing else: it may change any
file of the image and no file of the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cove.images.step import Step
from cove.images.store import IMAGE_UID
from cove.runtime.local import bwrap, cgroups, disk, imagefs
from cove.runtime.local.procs import kill_all, read_until, wait_child
from cove.wire.errors import SandboxError

log = logging.getLogger("cove.runtime")

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class StepHost:
    """What a build sandbox needs from the local backend."""

    root: Path  # where sandboxes' directories go (traversable by sandbox uids)
    mountpoints: Path
    lib: str
    seccomp: bytes
    cgroup_version: str | None
    cgroup_parent: str
    # Where disk templates are kept (see `disk`); None: steps' writes are not bounded here.
    disk_templates: Path | None = None


@dataclass
class StepNet:
    """The network a RUN step runs in (see bwrap.Launch.netns), and what it inherits."""

    netns: str
    resolv_conf: bytes
    env: dict[str, str]  # the host's proxy settings
    ca_bundle: bytes | None = None  # PEM, at CA_PATH with the variables tools read


# On a tmpfs of its own (imagefs's mount point layer has the directory), so
# nothing of it reaches the layer.
CA_DIR = "/run/cove-build"
CA_PATH = f"{CA_DIR}/ca-certificates.crt"
CA_VARS = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
PIP_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf")


def ca_bundle(setting: str) -> bytes | None:
    """The CA bundle RUN steps trust: the setting's file, "none", or the host pip's `cert`."""
    if setting == "none":
        return None
    path = setting or _pip_cert()
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        if setting:  # asked for by name: say so at start
            raise ValueError(f"COVE_BUILD_CA_BUNDLE {path!r}: {exc.strerror}") from None
        log.warning("the host pip's CA bundle %s is not readable: %s", path, exc)
        return None


def _pip_cert() -> str | None:
    import configparser

    for path in PIP_CONFIGS:
        cp = configparser.ConfigParser()
        try:
            cp.read(path)
        except configparser.Error:
            continue
        for section in ("install", "global"):
            if cp.has_option(section, "cert"):
                return cp.get(section, "cert").strip() or None
    return None


# What the host's own apt (through apt's http_proxy support) and pip honour.
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def host_proxy_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    return {k: environ[k] for k in PROXY_VARS if environ.get(k)}


async def run(
    host: StepHost, step: Step, name: str, out: Callable[[str], None], net: StepNet | None = None
) -> Path:
    """Run `step`; return its upper directory (the caller moves it away, then calls `discard`).

    SandboxError with the exit status if the step fails.
    """
    base = host.root / name
    for sub in ("home", "control"):
        (base / sub).mkdir(parents=True, exist_ok=True)
        os.chown(base / sub, IMAGE_UID, IMAGE_UID)
    writable = base  # where the step's writes land: its layer (upper), home and control
    templates = host.disk_templates
    bound = step.disk_bytes if templates is not None else None
    if bound and templates is not None:
        # A disk of its own, as a sandbox's: past the bound, writes inside fail with ENOSPC.
        try:
            await asyncio.to_thread(disk.create, base, templates, bound, IMAGE_UID)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SandboxError(f"making the build step's disk failed: {exc}") from None
        writable = disk.volume(base)
    rootfs = base / "rootfs"
    await asyncio.to_thread(
        imagefs.mount_overlay,
        [str(host.mountpoints), *step.lower],
        writable / "upper",
        writable / "work",
        rootfs,
    )
    cg = None
    binds = dict(step.ro_binds)
    mounted = [rootfs]
    try:
        for i, (inside, layers) in enumerate(step.ro_images.items()):
            target = base / f"src-{i}"
            target.mkdir()
            top = [str(host.mountpoints), *layers]
            await asyncio.to_thread(imagefs.mount_readonly, top, target)
            mounted.append(target)
            binds[inside] = str(target)
        for i, (inside, host_dir) in enumerate(step.ro_binds.items()):
            # bwrap resolves bind sources as the sandbox's uid: give it a path it can reach.
            target = base / f"bind-{i}"
            target.mkdir()
            await asyncio.to_thread(imagefs.bind_mount, host_dir, target)
            mounted.append(target)
            binds[inside] = str(target)
        if host.cgroup_version:
            cg = await asyncio.to_thread(
                cgroups.SandboxCgroups.create,
                host.cgroup_parent, name, cgroups.Limits(step.cpus, step.memory_bytes, step.pids),
                IMAGE_UID, host.cgroup_version,
            )  # fmt: skip
        passwd, group = imagefs.account_files(step.lower)
        base_env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"}
        script = 'mkdir -p "$1" && cd "$1" && shift && exec "$@"'
        launch = bwrap.Launch(
            uid=IMAGE_UID,
            home=str(base / "home"),
            control=str(base / "control"),
            lib=host.lib,
            runtime=None,
            seccomp=host.seccomp,
            tmp_bytes=step.memory_bytes // 2,
            cgroups=cg,
            image=imagefs.ImageRoot(str(rootfs), passwd, group),
            command=["/bin/sh", "-c", script, "sh", step.cwd, *step.argv],
            env={**base_env, **_net_env(net), **step.env},
            inside_uid=0,
            ro_binds=binds,
            netns=net.netns if net else None,
            resolv_conf=net.resolv_conf if net else None,
            extra_files={CA_PATH: net.ca_bundle} if net and net.ca_bundle else {},
        )
        code = await _spawn_and_stream(launch, out, step.timeout, cg)
        if code != 0 and bound and disk.nearly_full(writable, bound):
            full = (
                f"the step filled its disk: a build step may write at most "
                f"{_size(bound)} (COVE_BUILD_DISK_GIB)"
            )
            out(full)
            raise SandboxError(f"exit status {code}; {full}")
    finally:
        for target in mounted:
            await asyncio.to_thread(imagefs.unmount, target)
        if cg is not None:
            kill_all(cg.processes())
            with contextlib.suppress(OSError):
                await asyncio.to_thread(cg.remove)
    if code != 0:
        raise SandboxError(f"exit status {code}")
    return writable / "upper"


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n % (1 << 30) == 0 else f"{n >> 20} MiB"


def _net_env(net: StepNet | None) -> dict[str, str]:
    if net is None:
        return {}
    env = dict(net.env)
    if net.ca_bundle:
        env.update(dict.fromkeys(CA_VARS, CA_PATH))
    return env


async def _spawn_and_stream(
    launch: bwrap.Launch, out: Callable[[str], None], timeout: float, cg: object
) -> int:
    read_fd, write_fd = os.pipe()
    try:
        spawned = await bwrap.spawn_agent(launch, write_fd)
    finally:
        os.close(write_fd)
    os.close(spawned.ready_fd)  # no agent: nothing will say "ready"
    try:
        # bwrap writes the child's pid there first; a closed pipe would kill it (SIGPIPE).
        await asyncio.wait_for(read_until(spawned.info_fd, b"}"), 30)
    except TimeoutError:  # read_until has closed the fd either way
        spawned.popen.kill()
        os.close(read_fd)
        raise SandboxError("the build sandbox did not start") from None
    try:
        await asyncio.wait_for(_stream_lines(read_fd, out), timeout)
    except TimeoutError:
        spawned.popen.kill()
        await wait_child(spawned.popen)
        raise SandboxError(f"the step did not finish in {timeout:g}s") from None
    return await wait_child(spawned.popen)


async def _stream_lines(fd: int, out: Callable[[str], None]) -> None:
    """Each line written to the pipe `fd`, to `out`, until EOF; closes `fd`.

    A reader callback on the bare fd, not a pipe transport (see procs.read_until).
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    pending = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(fd)
            if not done.done():
                done.set_result(None)
            return
        pending.extend(chunk)
        while (i := pending.find(b"\n")) >= 0:
            out(pending[:i].decode(errors="replace"))
            del pending[: i + 1]
        if len(pending) > 1 << 16:  # a very long line: pass it on in pieces
            out(pending.decode(errors="replace"))
            pending.clear()

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    if pending:
        out(pending.decode(errors="replace"))


def discard(host: StepHost, name: str) -> None:
    """Remove what is left of a build sandbox's directory."""
    try:
        imagefs.remove_tree(host.root / name)
    except OSError as exc:
        log.warning("build sandbox %s: %s", name, exc)
