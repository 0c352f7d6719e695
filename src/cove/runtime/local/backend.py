"""`LocalBackend`: the runtime contract (`runtime/base.py`) for sandboxes on this host.

This module keeps sandboxes' lifecycles in order and delegates each piece of
isolation to a module of its own (see the package docstring). The agent is
started in its own session, not tied to the control plane's lifetime, so a
control-plane restart finds it still running: a handle's state (uid, pid,
pid start time, cgroup dirs) is all a new control plane needs to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cove.agent.config import AgentConfig
from cove.images.step import Log, Step
from cove.images.store import IMAGE_UID, ImageStore
from cove.runtime.base import (
    HostRoom,
    ResourceUsage,
    RuntimeBackend,
    RuntimeHandle,
    SandboxSpec,
    instance_of,
)
from cove.runtime.endpoint import UnixEndpoint
from cove.runtime.local import (
    adoption,
    buildstep,
    bwrap,
    cgroups,
    control,
    disk,
    fs,
    idmap,
    imagefs,
    resources,
    socketpin,
    staging,
    workspace,
)
from cove.runtime.local.net import NetworkManager
from cove.runtime.local.net import available as network_available
from cove.runtime.local.net.resolver import parse_upstream
from cove.runtime.local.phases import Phases
from cove.runtime.local.procs import (
    exit_description,
    kill_all,
    pid_start_time,
    read_until,
    terminate,
    wait_child,
    wait_pid,
)
from cove.runtime.local.seccomp import build_filter
from cove.runtime.warmpool import WarmPool
from cove.wire.errors import Conflict, SandboxError
from cove.wire.protocol.network import NetworkPolicy

log = logging.getLogger("cove.runtime")

# Bounds a hung agent only (one that dies closes its fds and is seen at once); generous
# because a burst of creates on a loaded 2-core host took agents past 15 s.
START_TIMEOUT = 60.0


def default_sandbox_root(data_dir: Path) -> Path:
    """Where workspaces live: must be reachable by the sandboxes' uids."""
    return Path("/var/lib/cove") if os.geteuid() == 0 else Path(data_dir) / "sandbox-root"


@dataclass
class _Live:
    """What only this control-plane process knows about a sandbox it started."""

    popen: subprocess.Popen[bytes] | None
    stopping: bool = False


class LocalBackend(RuntimeBackend):
    name = "local"

    def __init__(
        self,
        data_dir: Path,
        runtime_dir: Path | None = None,
        sandbox_root: Path | None = None,
        warm_pool: int = 0,
        network: str = "off",
        network_dns: str | None = None,
        network_conn_cap: int = 0,
        image_dir: Path | None = None,
        disk_quota: str = "auto",
        build_ca_bundle: str = "",
    ) -> None:
        self.warm_pool_size = max(0, warm_pool)
        # One instance id per data directory: its sandboxes' directories and
        # cgroups are namespaced by it.
        self.instance = instance_of(Path(data_dir))
        top = staging.make_root(sandbox_root or default_sandbox_root(data_dir))
        self.root = top / self.instance
        self.root.mkdir(exist_ok=True)
        self.root.chmod(0o755)
        self.cgroup_parent = f"cove-{self.instance}"
        self.cgroup_version = cgroups.detect()
        self.lib_dir = staging.stage_package(Path(__file__).resolve().parents[2], top)
        staging.precompile(self.lib_dir, fs.AGENT_PYTHON)
        self.runtime_dir = staging.stage_tree(runtime_dir, top, "runtime") if runtime_dir else None
        self._seccomp = build_filter()
        self._seccomp_root = build_filter(ownership_noop=True)  # uid 0 of a one-id namespace
        if disk_quota not in ("auto", "off"):
            raise ValueError(f"COVE_DISK_QUOTA must be auto or off, got {disk_quota!r}")
        # Each sandbox's own disk (see `disk`); None: sizes are recorded, not enforced.
        self.disk_note = disk.available() if disk_quota == "auto" else "COVE_DISK_QUOTA=off"
        self.disk_templates = top / "disk-templates"
        self._build_ca = buildstep.ca_bundle(build_ca_bundle)
        if network not in ("auto", "off"):
            raise ValueError(f"COVE_NETWORK must be auto or off, got {network!r}")
        why_not = network_available() if network == "auto" else "egress is off (COVE_NETWORK=off)"
        self._network_note = why_not
        self.net = (
            NetworkManager(
                self.instance,
                parse_upstream(network_dns) if network_dns else None,
                network_conn_cap,
            )
            if why_not is None
            else None
        )
        self.images = ImageStore(image_dir or Path(data_dir) / "images")
        self._building: set[str] = set()  # build sandboxes' names, kept from cleanup
        self._live: dict[str, _Live] = {}
        # Starts in flight, each with the handle it writes to. A stop or a
        # leftovers sweep that comes meanwhile waits for the start to end, then
        # ends what it made: on a Ray node the actor outlives a control plane
        # killed mid-start, and the next one stops that sandbox while its start
        # still runs (it waited forever on an agent nobody had killed).
        self._starting: dict[str, tuple[asyncio.Future[None], RuntimeHandle]] = {}
        # Pre-started sandboxes: empty until a long-lived control plane calls
        # `serve` (the pool's tasks need an event loop that outlives them).
        self.pool = WarmPool(0, self._prestart, self.destroy)

    def _dir(self, sid: str) -> Path:
        return self.root / sid

    def _cgroups(self, handle: RuntimeHandle) -> cgroups.SandboxCgroups | None:
        dirs = handle.state.get("cgroups")
        if not self.cgroup_version or not dirs:
            return None
        return cgroups.SandboxCgroups(self.cgroup_version, dirs)

    def agent_endpoint(self, handle: RuntimeHandle) -> UnixEndpoint:
        return UnixEndpoint(self.agent_socket(handle))

    def _own_fs_dir(self, handle: RuntimeHandle) -> Path:
        """A root-owned dir on the filesystem of the sandbox's writes: its disk's, if it has one.

        The agent's socket is pinned there (a hard link cannot cross filesystems)
        and an image root's upper and work dirs live there (they count against `disk`).
        """
        base = self._dir(handle.sandbox_id)
        return disk.volume(base) if handle.state.get("disk") else base

    def agent_socket(self, handle: RuntimeHandle) -> str:
        """The agent's pinned unix socket on this host."""
        uid, pid = handle.state.get("uid"), handle.state.get("pid")
        return socketpin.pin_agent_socket(
            self._own_fs_dir(handle),
            handle.sandbox_id,
            None if uid is None else int(uid),
            int(pid) if pid else None,
        )

    # -- create ----------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> RuntimeHandle:
        if spec.image:
            self.images.get(spec.image)  # NotFound now rather than at start
        while (taken := self.pool.take(spec)) is not None:
            pooled, started_as = taken
            try:
                return await self._adopt(pooled, spec, started_as.network)
            except OSError as exc:  # e.g. it died meanwhile: start cold instead
                log.warning("warm pool: could not adopt %s: %s", pooled.sandbox_id, exc)
                await self.destroy(pooled)
        return await self._create_cold(spec)

    async def _create_cold(self, spec: SandboxSpec) -> RuntimeHandle:
        uid = workspace.allocate_uid(self.root, spec.id)
        base = self._dir(spec.id)
        workspace.make_dirs(base, uid)
        state: dict[str, object] = {"uid": uid}
        if spec.disk_bytes and self.disk_note is None:
            try:
                await asyncio.to_thread(
                    disk.create, base, self.disk_templates, spec.disk_bytes, uid
                )
            except (OSError, subprocess.CalledProcessError) as exc:
                await asyncio.to_thread(imagefs.remove_tree, base)
                raise SandboxError(f"sandbox {spec.id}: making its disk failed: {exc}") from None
            state["disk"] = spec.disk_bytes
        if spec.image:
            if self._own_root(spec.image):
                state["image"] = spec.image
            await asyncio.to_thread(self._seed_workspace, spec.image, spec.id, uid)
        return RuntimeHandle(spec.id, self.name, state)

    async def _prestart(self, spec: SandboxSpec) -> RuntimeHandle:
        handle = await self._create_cold(spec)
        try:
            await self._start(handle, spec)
        except BaseException:
            await self.destroy(handle)
            raise
        return handle

    async def _adopt(
        self, pooled: RuntimeHandle, spec: SandboxSpec, pooled_policy: NetworkPolicy
    ) -> RuntimeHandle:
        """Give a pooled sandbox `spec`'s id (see `adoption`); it runs `pooled_policy`."""
        if not self.is_running(pooled):
            raise OSError(f"pooled sandbox {pooled.sandbox_id} is not running")
        old, new = pooled.sandbox_id, spec.id
        adoption.rename(self.root, old, new, pooled.state.get("cgroups", {}))
        if old in self._live:
            self._live[new] = self._live.pop(old)
        handle = RuntimeHandle(new, self.name, pooled.state)
        net = handle.state.get("net")
        if self.net is not None and net:
            self.net.rename(net, new)
            # The new owner's policy is in force before any of its code runs, and
            # no name the pool resolved stays open. When it is the policy the
            # sandbox was pooled with and it has no allow list, the rules in force
            # are already its own and hold no resolved name (only an allow list
            # lets the resolver open addresses): rewriting them, an `nft` run and
            # about a third of an adoption, would change nothing.
            if spec.network != pooled_policy or spec.network.restricted:
                await self.net.set_policy(net, spec.network, flush_dns=True)
        await self._join_link(handle, spec)
        self._write_config(handle, spec)
        await adoption.tell_identity(self.agent_socket(handle), new)
        return handle

    def _agent_config(self, spec: SandboxSpec) -> AgentConfig:
        python: str | None = fs.AGENT_PYTHON
        own_root = False
        if spec.image and self._own_root(spec.image):  # the image's own python3, if any
            own_root = True
            python = imagefs.find_python(self.images.lower_dirs(spec.image))
        return AgentConfig(
            sandbox_id=spec.id,
            socket=f"{fs.CONTROL}/{socketpin.PINNED}",
            workdir=fs.HOME,
            user="root" if self._runs_as_root(spec.image) else fs.SANDBOX_USER,
            env=spec.env,
            language=spec.language,
            max_output_bytes=spec.max_output_bytes,
            max_log_bytes=spec.max_log_bytes,
            cgroup_dir=fs.CGROUP if self.cgroup_version else None,
            control_dir=fs.CONTROL,
            runtime_dir=fs.RUNTIME,
            python=python or "",
            entrypoint=spec.entrypoint,
            session_cwd=spec.workdir,
            # The host's, bound read-only; an image's own can be replaced by its code.
            join_shell="" if own_root else fs.JOIN_SHELL,
        )

    def _write_config(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        control.write_config(
            self._dir(handle.sandbox_id) / "control",
            self._agent_config(spec),
            int(handle.state["uid"]),
        )

    # -- start -----------------------------------------------------------------

    async def start(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        await self._after_start_in_flight(handle)
        if self.is_running(handle):
            return
        sid = handle.sandbox_id
        run = asyncio.ensure_future(self._start_in_foreground(handle, spec))
        self._starting[sid] = (run, handle)
        try:
            await run  # cancelling this start cancels `run` too
        finally:
            if self._starting.get(sid, (None, None))[0] is run:
                del self._starting[sid]

    async def _start_in_foreground(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        async with self.pool.foreground():
            await self._start(handle, spec)

    def starting(self, sid: str) -> bool:
        """Whether a start of this sandbox is in flight here."""
        return sid in self._starting

    async def _after_start_in_flight(self, handle: RuntimeHandle) -> None:
        """Wait out a start of this sandbox that another caller has in flight, and
        take on the state it wrote (the agent's pid, cgroups, network): `handle`
        may be a copy made before that start began."""
        entry = self._starting.get(handle.sandbox_id)
        if entry is None:
            return
        run, own = entry
        await asyncio.wait([run])  # its outcome is its caller's; only its end matters
        if own is not handle:
            handle.state.clear()
            handle.state.update(own.state)

    def _fresh_cgroups(self, handle: RuntimeHandle, spec: SandboxSpec) -> cgroups.SandboxCgroups:
        """The last run's cgroups removed, this run's made (blocking: run in a thread)."""
        assert self.cgroup_version is not None
        old = self._cgroups(handle)
        if old is not None:
            try:
                old.remove()
            except OSError as exc:  # e.g. still busy: the new ones are made over them
                log.warning("sandbox %s: removing old cgroups failed: %s", handle.sandbox_id, exc)
        return cgroups.SandboxCgroups.create(
            self.cgroup_parent,
            handle.sandbox_id,
            cgroups.Limits(spec.cpus, spec.memory_bytes, spec.pids),
            int(handle.state["uid"]),
            self.cgroup_version,
        )

    async def _start(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        if self.is_running(handle):
            return
        bwrap.require()
        phases = Phases("start")
        base = self._dir(handle.sandbox_id)
        ctl = base / "control"
        try:
            # First: the control dir the config goes to is on the sandbox's disk.
            await asyncio.to_thread(self._mount_disk, handle, spec)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SandboxError(f"sandbox {handle.sandbox_id}: its disk: {exc}") from None
        self._write_config(handle, spec)
        socketpin.unpin(self._own_fs_dir(handle))
        try:
            image = await asyncio.to_thread(self._mount_image, handle)
            phases.mark("config+image")
        except OSError as exc:
            raise SandboxError(f"sandbox {handle.sandbox_id}: {exc}") from None
        cg = None
        if self.cgroup_version:
            cg = await asyncio.to_thread(self._fresh_cgroups, handle, spec)
            handle.state["cgroups"] = cg.dirs
            phases.mark("cgroups")
        as_root = self._runs_as_root(spec.image)
        launch = bwrap.Launch(
            uid=int(handle.state["uid"]),
            home=str(base / "home"),
            control=str(ctl),
            lib=str(self.lib_dir),
            # The runtime's packages are built for the host's Python, not an image's.
            runtime=str(self.runtime_dir) if self.runtime_dir and not image else None,
            seccomp=self._seccomp_root if as_root else self._seccomp,
            tmp_bytes=spec.memory_bytes // 2,
            cgroups=cg,
            image=image,
            inside_uid=0 if as_root else fs.SANDBOX_UID,
        )
        connecting: asyncio.Future[None] | None = None
        if self.net is not None:
            await self._detach_network(handle)  # a run that died without a stop left it
            net = await self.net.open(handle.sandbox_id)
            handle.state["net"] = net
            launch.netns = self.net.netns_path(net)
            launch.resolv_conf = self.net.resolv_conf(net)
            # Pair, rules and resolver are made while the agent starts up (it
            # needs none of them to start, and until they are in place its
            # namespace reaches nothing); both are done before this returns,
            # so before any code but the agent's runs in the sandbox.
            connecting = asyncio.ensure_future(self._connect_network(handle, spec))
            phases.mark("network open")
        log_fd = control.open_log(ctl)
        try:
            spawned = await bwrap.spawn_agent(launch, log_fd)
        except BaseException:
            await _settle(connecting)
            await self._detach_network(handle)
            raise
        finally:
            os.close(log_fd)
        phases.mark("spawn")
        popen = spawned.popen
        self._live[handle.sandbox_id] = _Live(popen)
        try:
            info, ready = await asyncio.wait_for(
                asyncio.gather(
                    read_until(spawned.info_fd, b"}"), read_until(spawned.ready_fd, b"\n")
                ),
                START_TIMEOUT,
            )
            phases.mark("agent ready")
            if connecting is not None:
                await connecting
                phases.mark("network connect (rest)")
        except TimeoutError:
            popen.kill()
            await _settle(connecting)
            raise SandboxError(
                f"sandbox agent did not become ready in {START_TIMEOUT:g}s; {control.log_tail(ctl)}"
            ) from None
        except BaseException:
            # E.g. the network could not be made: as when that failed before the
            # agent started, nothing of this run is left (its stop finds no net).
            popen.kill()
            await _settle(connecting)
            await wait_child(popen)
            await self._detach_network(handle)
            raise
        if not ready.startswith(b"ready"):
            code = await wait_child(popen)
            raise SandboxError(
                f"sandbox agent failed to start (exit status {code}): {control.log_tail(ctl)}"
            )
        pid = json.loads(info)["child-pid"]
        handle.state.update({"pid": pid, "pidStart": pid_start_time(pid)})
        phases.emit()

    def _mount_disk(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        """The sandbox's disk mounted (after a host restart) and grown to the spec (blocking)."""
        size = handle.state.get("disk")
        if not size:
            return
        size = max(int(size), spec.disk_bytes)  # a resize only grows a disk
        disk.ensure_mounted(self._dir(handle.sandbox_id), size, int(handle.state["uid"]))
        handle.state["disk"] = size

    def _mount_image(self, handle: RuntimeHandle) -> imagefs.ImageRoot | None:
        """The sandbox's image root mounted (blocking: run in a thread); None without an image."""
        image_id = handle.state.get("image")
        if not image_id:
            return None
        base = self._dir(handle.sandbox_id)
        lower = self.images.lower_dirs(str(image_id))
        rootfs = base / "rootfs"
        if not imagefs.is_mounted(rootfs):
            own = self._own_fs_dir(handle)
            layers = [str(imagefs.mountpoint_layer(self.images.root)), *lower]
            owner = IMAGE_UID
            if self._runs_as_root(str(image_id)):
                # Root of the image (docs/images.md): its layers seen as owned by
                # the sandbox's uid, which is 0 inside; its upper layer its own.
                owner = int(handle.state["uid"])
                self._unmount_lower(handle.sandbox_id)  # a run that died left them
                layers = idmap.mount_layers(layers, base / "lower", IMAGE_UID, owner)
            try:
                imagefs.mount_overlay(layers, own / "upper", own / "work", rootfs, owner)
            except OSError:
                self._unmount_lower(handle.sandbox_id)
                raise
        self.images.touch(str(image_id))
        passwd, group = imagefs.account_files(lower)
        return imagefs.ImageRoot(str(rootfs), passwd, group)

    def _unmount_image(self, sid: str) -> None:
        try:
            imagefs.unmount(self._dir(sid) / "rootfs")
        except OSError as exc:
            log.warning("sandbox %s: %s", sid, exc)
        self._unmount_lower(sid)

    def _unmount_lower(self, sid: str) -> None:
        """The ID-mapped layer mounts of a root-in-sandbox image, detached."""
        lower = self._dir(sid) / "lower"
        for point in sorted(imagefs.mounts_under(lower), key=len, reverse=True):
            try:
                imagefs.unmount(Path(point))
            except OSError as exc:
                log.warning("sandbox %s: %s", sid, exc)

    def _runs_as_root(self, image_id: str | None) -> bool:
        """Whether the image says USER root: its sandbox is uid 0 in its namespace."""
        if not image_id or not self._own_root(image_id):
            return False
        user = self.images.get(image_id).config.user or ""
        return user.split(":")[0] in ("root", "0")

    # -- running -----------------------------------------------------------------

    def is_running(self, handle: RuntimeHandle) -> bool:
        pid = handle.state.get("pid")
        if not pid:
            return False
        return pid_start_time(int(pid)) == handle.state.get("pidStart")

    async def wait_exit(self, handle: RuntimeHandle) -> str:
        pid = int(handle.state.get("pid") or 0)
        oom_before = self._oom_kills(handle)
        if self.is_running(handle):
            with contextlib.suppress(ProcessLookupError):
                await wait_pid(pid)
        live = self._live.get(handle.sandbox_id)
        status = None
        if live and live.popen is not None:
            status = await wait_child(live.popen)
            if live.stopping:
                return "stopped"
        reason = exit_description(status)
        ooms = self._oom_kills(handle)
        if ooms > oom_before or (status == 128 + signal.SIGKILL and ooms):
            reason += "; the sandbox ran out of memory"
        tail = control.log_tail(self._dir(handle.sandbox_id) / "control", 2)
        if tail and "empty" not in tail:
            reason += f"; agent log: {tail}"
        return reason

    # -- resources of a running sandbox -------------------------------------------

    def _running_cgroups(self, handle: RuntimeHandle) -> cgroups.SandboxCgroups:
        cg = self._cgroups(handle)
        if cg is None or not self.is_running(handle):
            raise Conflict(f"sandbox {handle.sandbox_id} is not running")
        return cg

    async def resize(self, handle: RuntimeHandle, cpus: float, memory_bytes: int) -> None:
        cg = self._running_cgroups(handle)
        await asyncio.to_thread(resources.resize, cg, cpus, memory_bytes)

    async def usage(self, handle: RuntimeHandle) -> ResourceUsage | None:
        cg = self._cgroups(handle)
        if cg is None or not self.is_running(handle):
            return None
        home = self._dir(handle.sandbox_id) / "home"
        try:
            return await asyncio.to_thread(resources.read_usage, cg, home)
        except OSError as exc:  # the sandbox stopped while it was read
            log.debug("sandbox %s: no usage reading: %s", handle.sandbox_id, exc)
            return None

    def warm_pool_ready(self) -> int | None:
        return len(self.pool.ready()) if self.pool.size else None

    def host_room(self) -> HostRoom:
        st = os.statvfs(self.root)
        return HostRoom(resources.memory_available(), st.f_bavail * st.f_frsize)

    def _oom_kills(self, handle: RuntimeHandle) -> int:
        cg = self._cgroups(handle)
        return cg.oom_kills() if cg is not None else 0

    # -- stop and destroy ------------------------------------------------------------

    async def stop(self, handle: RuntimeHandle, grace: float = 5.0) -> None:
        await self._after_start_in_flight(handle)
        live = self._live.setdefault(handle.sandbox_id, _Live(None))
        live.stopping = True
        if self.is_running(handle):
            # The agent ends its user processes on SIGTERM; SIGKILL of the
            # namespace's PID 1 then takes down anything that is left.
            await terminate(int(handle.state["pid"]), grace)
        if live.popen is not None:
            await wait_child(live.popen)
        self._live.pop(handle.sandbox_id, None)
        handle.state.pop("pid", None)
        handle.state.pop("pidStart", None)
        cg = self._cgroups(handle)
        if cg is not None:
            kill_all(cg.processes())  # e.g. the bwrap monitor of a previous control plane
            await asyncio.to_thread(cg.remove)
            handle.state.pop("cgroups", None)
        self._unmount_image(handle.sandbox_id)
        await self._detach_network(handle)

    async def _detach_network(self, handle: RuntimeHandle) -> None:
        net = handle.state.pop("net", None)
        if net and self.net is not None:
            await self.net.detach(net)

    # -- network -------------------------------------------------------------------

    @property
    def network_note(self) -> str | None:
        return self._network_note

    async def set_network(
        self, handle: RuntimeHandle, old: NetworkPolicy, new: NetworkPolicy
    ) -> None:
        net = handle.state.get("net")
        if self.net is not None and net and self.is_running(handle):
            # Names resolved under the old domain list stay open while it is unchanged.
            flush = old.domain_allow_list != new.domain_allow_list
            await self.net.set_policy(net, new, flush_dns=flush)

    async def reattach(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        net = handle.state.get("net")
        if self.net is not None and net:
            await self.net.resume(net, spec.network)
            await self._join_link(handle, spec)

    async def _connect_network(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        assert self.net is not None
        await self.net.connect(handle.state["net"], spec.network)
        await self._join_link(handle, spec)

    async def _join_link(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        """Into its link group (owner and followers), reachable by name and id there."""
        net = handle.state.get("net")
        if self.net is not None and net and spec.link_group:
            await self.net.join(net, spec.link_group, [n for n in (spec.name, spec.id) if n])

    async def destroy(self, handle: RuntimeHandle) -> None:
        await self.stop(handle, grace=1.0)
        await asyncio.to_thread(imagefs.remove_tree, self._dir(handle.sandbox_id))

    # -- image builds ------------------------------------------------------------------

    async def run_build_step(self, step: Step, out: Log, dest: Path) -> None:
        """`StepRunner`: run `step` in a build sandbox; its upper directory moves to `dest`."""
        host = buildstep.StepHost(
            self.root,
            imagefs.mountpoint_layer(self.images.root),
            str(self.lib_dir),
            self._seccomp_root,
            self.cgroup_version,
            self.cgroup_parent,
            self.disk_templates if self.disk_note is None else None,
        )
        if step.disk_bytes and self.disk_note is not None:
            out(f"(this step's writes are not bounded: {self.disk_note})")
        name = f"build-{os.urandom(6).hex()}"
        self._building.add(name)
        net = None
        try:
            step_net = None
            if step.network and self.net is not None:
                # The default policy, as a sandbox that asks for nothing has.
                net = await self.net.attach(name, NetworkPolicy())
                step_net = buildstep.StepNet(
                    self.net.netns_path(net),
                    self.net.resolv_conf(net),
                    buildstep.host_proxy_env(),
                    self._build_ca,
                )
            elif step.network:
                out(f"(no network for this step: {self._network_note})")
            upper = await buildstep.run(host, step, name, out, step_net)
            await asyncio.to_thread(_move_tree, upper, dest)
        finally:
            if net is not None and self.net is not None:
                await self.net.detach(net)
            await asyncio.to_thread(buildstep.discard, host, name)
            self._building.discard(name)

    async def capture_changes(self, handle: RuntimeHandle, dest: Path) -> None:
        """`Capturer`: the root's upper dir and the workspace (at home/user) as a layer."""
        await asyncio.to_thread(self._capture_changes, handle, dest)

    def _capture_changes(self, handle: RuntimeHandle, dest: Path) -> None:
        base = self._dir(handle.sandbox_id)
        upper = self._own_fs_dir(handle) / "upper"
        dest.mkdir()
        if upper.is_dir():
            subprocess.run(["cp", "-a", "--", f"{upper}/.", str(dest)], check=True)
        home = dest / fs.HOME.lstrip("/")
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", "--", f"{base / 'home'}/.", str(home)], check=True)
        subprocess.run(["chown", "-hR", f"{IMAGE_UID}:{IMAGE_UID}", str(dest)], check=True)

    def _own_root(self, image_id: str) -> bool:
        """Whether sandboxes of the image run on it (else: on the default root, see Image)."""
        return not self.images.get(image_id).host_root

    def _seed_workspace(self, image_id: str, sid: str, uid: int) -> None:
        """An image's /home/user (e.g. a snapshot's workspace) copied into a new workspace."""
        lower = self.images.lower_dirs(image_id)
        if not any(os.path.isdir(os.path.join(d, fs.HOME.lstrip("/"))) for d in lower):
            return
        base = self._dir(sid)
        view = base / "seed"
        view.mkdir(exist_ok=True)
        top = imagefs.mountpoint_layer(self.images.root)
        imagefs.mount_readonly([str(top), *lower], view)
        try:
            src = view / fs.HOME.lstrip("/")
            subprocess.run(["cp", "-a", "--", f"{src}/.", str(base / "home")], check=True)
        finally:
            imagefs.unmount(view)
            view.rmdir()
        subprocess.run(["chown", "-hR", f"{uid}:{uid}", str(base / "home")], check=True)

    # -- the control plane's own start and end ----------------------------------------

    def serve(self) -> None:
        """Keep `warm_pool` sandboxes pre-started (COVE_WARM_POOL; 2 by default).

        Adoption renames the sandbox's cgroups, which only cgroup v1 allows.
        """
        if self.cgroup_version != "v2":
            self.pool.size = self.warm_pool_size

    async def close(self) -> None:
        """The control plane is shutting down: pooled sandboxes belong to no one."""
        await self.pool.close()
        if self.net is not None:
            await self.net.close()
        if self.cgroup_version:
            # Running sandboxes stay for the next control plane; an empty parent goes.
            cgroups.remove_parent_if_empty(self.cgroup_version, self.cgroup_parent)
        try:  # likewise the instance dir, once empty
            self.root.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT):
                log.warning("could not remove the empty sandbox root %s: %s", self.root, exc)

    async def cleanup_leftovers(self, known_ids: set[str]) -> list[str]:
        known_ids = known_ids | self.pool.ids() | self._building
        for sid, (run, _) in list(self._starting.items()):
            if sid not in known_ids:  # what it makes is swept below
                await asyncio.wait([run])
        removed: set[str] = set()
        if self.cgroup_version:
            leftovers = cgroups.list_leftovers(self.cgroup_version, self.cgroup_parent)
            for sid, dirs in leftovers.items():
                if sid in known_ids:
                    continue
                cg = cgroups.SandboxCgroups(
                    self.cgroup_version, {str(i): d for i, d in enumerate(dirs)}
                )
                kill_all(cg.processes())
                live = self._live.pop(sid, None)
                if live is not None and live.popen is not None:
                    await wait_child(live.popen)
                try:
                    await asyncio.to_thread(cg.remove)
                except OSError as exc:
                    log.warning("leftover cgroups of sandbox %s stay: %s", sid, exc)
                removed.add(sid)
        if self.net is not None:
            removed.update(await self.net.cleanup(known_ids))
        for entry in self.root.iterdir():
            if entry.name not in known_ids:
                try:  # never through a mount: detached first, or left alone
                    await asyncio.to_thread(imagefs.remove_tree, entry)
                except OSError as exc:
                    log.warning("leftover %s stays: %s", entry, exc)
                removed.add(entry.name)
        return sorted(removed)


async def _settle(task: asyncio.Future[None] | None) -> None:
    """Wait out a task whose result no longer matters (a start that failed anyway)."""
    if task is not None:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the start's own error is the one reported


def _move_tree(src: Path, dest: Path) -> None:
    """Rename, or copy keeping devices (whiteouts), xattrs (opaque dirs) and owners."""
    try:
        src.rename(dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        subprocess.run(["cp", "-a", "--", str(src), str(dest)], check=True)
