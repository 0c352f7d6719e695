"""The `local` backend: bubblewrap + cgroups on this host.

Each sandbox gets its own unprivileged host uid (never host root mapped
through: bwrap runs after the uid drop), PID/mount/net/IPC/UTS namespaces,
a seccomp filter, cgroup limits, and the agent as PID 1 inside. The agent
is started in its own session, not tied to the control plane's lifetime, so
a control-plane restart finds it still running (see `reattach` below).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cove.runtime import cgroups, fs, staging
from cove.runtime.base import RuntimeBackend, RuntimeHandle, SandboxSpec
from cove.runtime.seccomp import build_filter
from cove.runtime.warmpool import WarmPool
from cove.wire import http1
from cove.wire.errors import SandboxError

log = logging.getLogger("cove.runtime")

UID_BASE = 600_000
UID_SPAN = 1 << 24
START_TIMEOUT = 15.0
AGENT_PYTHON = "/usr/bin/python3"  # Debian's: readable inside the sandbox


def _pid_start_time(pid: int) -> str | None:
    """Kernel start time of a live `pid`, to tell it from a reused pid (None: gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return fields[19]


def default_sandbox_root(data_dir: Path) -> Path:
    """Where workspaces live: must be reachable by the sandboxes' uids."""
    return Path("/var/lib/cove") if os.geteuid() == 0 else Path(data_dir) / "sandbox-root"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


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
    ) -> None:
        self.warm_pool_size = max(0, warm_pool)
        # One instance id per data directory: its sandboxes' directories and
        # cgroups are namespaced by it.
        self.instance = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
        top = staging.make_root(sandbox_root or default_sandbox_root(data_dir))
        self.root = top / self.instance
        self.root.mkdir(exist_ok=True)
        self.root.chmod(0o755)
        self.cgroup_parent = f"cove-{self.instance}"
        self.cgroup_version = cgroups.detect()
        self.lib_dir = str(staging.stage_package(Path(__file__).resolve().parents[1], top))
        _precompile(self.lib_dir)
        self.runtime_dir = staging.stage_tree(runtime_dir, top, "runtime") if runtime_dir else None
        self._seccomp = build_filter()
        self._live: dict[str, _Live] = {}
        # Pre-started sandboxes: empty until a long-lived control plane calls
        # `serve` (the pool's tasks need an event loop that outlives them).
        self.pool = WarmPool(0, self._prestart, self.destroy)

    # -- paths ---------------------------------------------------------------

    def _dir(self, sid: str) -> Path:
        return self.root / sid

    def agent_socket(self, handle: RuntimeHandle) -> str:
        """A hard link to the agent's socket, made by the host where the sandbox cannot write.

        The agent binds agent.sock in the control dir, which the sandbox's user
        can change: a symlink planted there would send the control plane (root)
        to a neighbour's agent or to any host socket. The link is made once per
        agent run (without following links) and kept only if it names a socket
        the agent process itself listens on: user code runs as the same uid and
        could bind a socket of its own there.
        """
        base = self._dir(handle.sandbox_id)
        pinned = base / "agent.sock"
        try:
            st = os.lstat(pinned)
            fresh = False
        except FileNotFoundError:
            try:
                os.link(base / "control" / "agent.sock", pinned, follow_symlinks=False)
            except FileNotFoundError:
                return str(pinned)  # no agent socket: connecting fails, as it should
            except FileExistsError:
                pass  # made meanwhile by another call
            st = os.lstat(pinned)
            fresh = True
        uid, pid = handle.state.get("uid"), handle.state.get("pid")
        ok = stat.S_ISSOCK(st.st_mode) and (uid is None or st.st_uid == int(uid))
        if ok and fresh and pid:
            listener = _listener_pid(str(pinned))
            if listener is None:  # nobody answers (a dead agent): pin nothing yet
                os.unlink(pinned)
                return str(pinned)
            ok = listener == int(pid)
        if not ok:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pinned)
            raise SandboxError(
                f"sandbox {handle.sandbox_id}: its agent socket was replaced; restart the sandbox"
            )
        return str(pinned)

    # -- lifecycle -------------------------------------------------------------

    def _allocate_uid(self, sid: str) -> int:
        used = set()
        with contextlib.suppress(OSError):
            for entry in self.root.iterdir():
                with contextlib.suppress(OSError):
                    used.add((entry / "home").stat().st_uid)
        uid = UID_BASE + int(hashlib.sha256(sid.encode()).hexdigest(), 16) % UID_SPAN
        while uid in used:
            uid = UID_BASE + (uid - UID_BASE + 1) % UID_SPAN
        return uid

    async def create(self, spec: SandboxSpec) -> RuntimeHandle:
        while (pooled := self.pool.take(spec)) is not None:
            try:
                return await self._adopt(pooled, spec)
            except OSError as exc:  # e.g. it died meanwhile: start cold instead
                log.warning("warm pool: could not adopt %s: %s", pooled.sandbox_id, exc)
                await self.destroy(pooled)
        return self._create_cold(spec)

    def _create_cold(self, spec: SandboxSpec) -> RuntimeHandle:
        uid = self._allocate_uid(spec.id)
        base = self._dir(spec.id)
        for sub in ("home", "control"):
            path = base / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, uid, uid)
            path.chmod(0o700)
        return RuntimeHandle(spec.id, self.name, {"uid": uid})

    def _config(self, handle: RuntimeHandle, spec: SandboxSpec) -> dict[str, object]:
        return {
            "sandboxId": spec.id,
            "socket": f"{fs.CONTROL}/agent.sock",
            "workdir": fs.HOME,
            "user": fs.SANDBOX_USER,
            "env": spec.env,
            "language": spec.language,
            "maxOutputBytes": spec.max_output_bytes,
            "maxLogBytes": spec.max_log_bytes,
            "cgroupDir": fs.CGROUP if self.cgroup_version else None,
            "controlDir": fs.CONTROL,
            "runtimeDir": fs.RUNTIME,
            "entrypoint": spec.entrypoint,
            "sessionCwd": spec.workdir,
        }

    async def _prestart(self, spec: SandboxSpec) -> RuntimeHandle:
        handle = self._create_cold(spec)
        try:
            await self._start(handle, spec)
        except BaseException:
            await self.destroy(handle)
            raise
        return handle

    async def _adopt(self, pooled: RuntimeHandle, spec: SandboxSpec) -> RuntimeHandle:
        """Give a pooled sandbox `spec`'s id: its directory and cgroups are renamed."""
        if not self.is_running(pooled):
            raise OSError(f"pooled sandbox {pooled.sandbox_id} is not running")
        old, new = pooled.sandbox_id, spec.id
        os.rename(self._dir(old), self._dir(new))
        dirs = pooled.state.get("cgroups", {})
        for ctrl, path in list(dirs.items()):
            target = os.path.join(os.path.dirname(path), new)
            os.rename(path, target)
            dirs[ctrl] = target
        if old in self._live:
            self._live[new] = self._live.pop(old)
        handle = RuntimeHandle(new, self.name, pooled.state)
        self._write_config(handle, spec)
        await _tell_identity(self.agent_socket(handle), new)
        return handle

    def _write_config(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        # Through `_open_control_file`: the sandbox's user can plant links here.
        control = self._dir(handle.sandbox_id) / "control"
        fd = _open_control_file(control / "agent.json", os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(self._config(handle, spec)).encode())
            os.fchown(f.fileno(), int(handle.state["uid"]), int(handle.state["uid"]))

    async def start(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        if self.is_running(handle):
            return
        async with self.pool.foreground():
            await self._start(handle, spec)

    def serve(self) -> None:
        """Keep `warm_pool` sandboxes pre-started (COVE_WARM_POOL; 2 by default).

        Adoption renames the sandbox's cgroups, which only cgroup v1 allows.
        """
        if self.cgroup_version != "v2":
            self.pool.size = self.warm_pool_size

    async def close(self) -> None:
        """The control plane is shutting down: pooled sandboxes belong to no one."""
        await self.pool.close()
        if self.cgroup_version:
            # Running sandboxes stay for the next control plane; an empty parent goes.
            cgroups.remove_parent_if_empty(self.cgroup_version, self.cgroup_parent)
        with contextlib.suppress(OSError):  # likewise the instance dir, once empty
            self.root.rmdir()

    async def _start(self, handle: RuntimeHandle, spec: SandboxSpec) -> None:
        if self.is_running(handle):
            return
        bwrap = bwrap_path()
        if bwrap is None:
            raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        uid = int(handle.state["uid"])
        base = self._dir(handle.sandbox_id)
        control = base / "control"
        self._write_config(handle, spec)
        for stale in (control / "agent.sock", base / "agent.sock"):  # the last run's
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

        cg = None
        if self.cgroup_version:
            with contextlib.suppress(OSError):
                cgroups.SandboxCgroups(
                    self.cgroup_version, handle.state.get("cgroups", {})
                ).remove()
            cg = cgroups.SandboxCgroups.create(
                self.cgroup_parent,
                handle.sandbox_id,
                cgroups.Limits(spec.cpus, spec.memory_bytes, spec.pids),
                uid,
                self.cgroup_version,
            )
            handle.state["cgroups"] = cg.dirs
        fa = fs.FdArgs()
        ready_r, ready_w = os.pipe()
        info_r, info_w = os.pipe()
        log = os.fdopen(_open_control_file(control / "agent.log", os.O_WRONLY | os.O_APPEND), "ab")
        try:
            fa.args = [
                bwrap, "--unshare-user", "--uid", str(fs.SANDBOX_UID), "--gid", str(fs.SANDBOX_UID),
                "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--hostname", "sandbox", "--disable-userns",
                "--as-pid-1", "--new-session", "--clearenv",
                "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
                "--setenv", "HOME", fs.HOME, "--setenv", "LANG", "C.UTF-8",
                "--setenv", "PYTHONPATH", fs.LIB, "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            ]  # fmt: skip
            fs.filesystem_args(
                fa,
                home=str(base / "home"),
                control=str(control),
                lib=self.lib_dir,
                runtime=str(self.runtime_dir) if self.runtime_dir else None,
                cgroup_binds=cg.binds() if cg else {},
                # /tmp is tmpfs charged to the user's memory: half the limit, so a
                # full /tmp still leaves room to run `rm`.
                tmp_bytes=spec.memory_bytes // 2,
            )
            fa.args += ["--seccomp", fa.data_fd(self._seccomp), "--info-fd", str(info_w)]
            # -S: the agent needs no site-packages; skipping `site` is ~3 ms a start.
            fa.args += [
                AGENT_PYTHON, "-s", "-S", "-m", "cove.agent",
                f"{fs.CONTROL}/agent.json", "--ready-fd", str(ready_w),
            ]  # fmt: skip
            join = cg.launcher_procs() if cg else []

            def become_sandbox() -> None:  # in the child: join cgroups as root, then drop
                for path in join:
                    with open(path, "w") as f:
                        f.write("0")
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)

            # In a thread: the child joins v1 cgroups before exec, and each
            # cgroup.procs write can take milliseconds (an RCU sync); on the
            # event loop that serialized every concurrent create behind it.
            popen = await asyncio.to_thread(
                subprocess.Popen,
                fa.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=[*fa.fds, ready_w, info_w],
                start_new_session=True,
                preexec_fn=become_sandbox,
            )
        finally:
            fa.close()
            log.close()
            os.close(ready_w)
            os.close(info_w)
        self._live[handle.sandbox_id] = _Live(popen)
        try:
            info, ready = await asyncio.wait_for(
                asyncio.gather(_read_until(info_r, b"}"), _read_until(ready_r, b"\n")),
                START_TIMEOUT,
            )
        except TimeoutError:
            popen.kill()
            raise SandboxError(
                f"sandbox agent did not become ready in {START_TIMEOUT:g}s; "
                f"{self._log_tail(handle)}"
            ) from None
        if not ready.startswith(b"ready"):
            code = await asyncio.to_thread(popen.wait)
            raise SandboxError(
                f"sandbox agent failed to start (exit status {code}): {self._log_tail(handle)}"
            )
        pid = json.loads(info)["child-pid"]
        handle.state.update({"pid": pid, "pidStart": _pid_start_time(pid)})

    def _log_tail(self, handle: RuntimeHandle, lines: int = 5) -> str:
        path = self._dir(handle.sandbox_id) / "control" / "agent.log"
        try:  # not through a link the sandbox planted, and only the end of it
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return "no agent log"
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return "no agent log"
            f.seek(max(0, os.fstat(fd).st_size - 16384))
            text = f.read().decode(errors="replace")
        tail = text.strip().splitlines()[-lines:]
        return " | ".join(tail) or "the agent log is empty"

    def is_running(self, handle: RuntimeHandle) -> bool:
        pid = handle.state.get("pid")
        if not pid:
            return False
        return _pid_start_time(int(pid)) == handle.state.get("pidStart")

    async def wait_exit(self, handle: RuntimeHandle) -> str:
        pid = int(handle.state.get("pid") or 0)
        oom_before = self._oom_kills(handle)
        if self.is_running(handle):
            with contextlib.suppress(ProcessLookupError):
                await _wait_pid(pid)
        live = self._live.get(handle.sandbox_id)
        status = None
        if live and live.popen is not None:
            status = await asyncio.to_thread(live.popen.wait)
            if live.stopping:
                return "stopped"
        reason = "the sandbox agent exited"
        if status is not None:
            reason += f" with status {status}"
            if status > 128:
                with contextlib.suppress(ValueError):
                    reason += f" ({signal.Signals(status - 128).name})"
        ooms = self._oom_kills(handle)
        if ooms > oom_before or (status == 128 + signal.SIGKILL and ooms):
            reason += "; the sandbox ran out of memory"
        tail = self._log_tail(handle, 2)
        if tail and "empty" not in tail:
            reason += f"; agent log: {tail}"
        return reason

    def _oom_kills(self, handle: RuntimeHandle) -> int:
        if not self.cgroup_version or not handle.state.get("cgroups"):
            return 0
        return cgroups.SandboxCgroups(self.cgroup_version, handle.state["cgroups"]).oom_kills()

    async def stop(self, handle: RuntimeHandle, grace: float = 5.0) -> None:
        live = self._live.setdefault(handle.sandbox_id, _Live(None))
        live.stopping = True
        pid = int(handle.state.get("pid") or 0)
        if self.is_running(handle):
            # The agent ends its user processes on SIGTERM; SIGKILL of the
            # namespace's PID 1 then takes down anything that is left.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(_wait_pid(pid), grace)
            except (TimeoutError, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    await _wait_pid(pid)
        if live.popen is not None:
            await asyncio.to_thread(live.popen.wait)
        self._live.pop(handle.sandbox_id, None)
        handle.state.pop("pid", None)
        handle.state.pop("pidStart", None)
        if self.cgroup_version and handle.state.get("cgroups"):
            cg = cgroups.SandboxCgroups(self.cgroup_version, handle.state["cgroups"])
            for p in cg.processes():  # e.g. the bwrap monitor of a previous control plane
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            await asyncio.to_thread(cg.remove)
            handle.state.pop("cgroups", None)

    async def destroy(self, handle: RuntimeHandle) -> None:
        await self.stop(handle, grace=1.0)
        await asyncio.to_thread(shutil.rmtree, self._dir(handle.sandbox_id), True)

    async def cleanup_leftovers(self, known_ids: set[str]) -> list[str]:
        known_ids = known_ids | self.pool.ids()
        removed: set[str] = set()
        if self.cgroup_version:
            for sid, dirs in cgroups.list_leftovers(
                self.cgroup_version, self.cgroup_parent
            ).items():
                if sid in known_ids:
                    continue
                cg = cgroups.SandboxCgroups(
                    self.cgroup_version, {str(i): d for i, d in enumerate(dirs)}
                )
                for p in cg.processes():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
                live = self._live.pop(sid, None)
                if live is not None and live.popen is not None:
                    await asyncio.to_thread(live.popen.wait)
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(cg.remove)
                removed.add(sid)
        with contextlib.suppress(OSError):
            for entry in self.root.iterdir():
                if entry.name not in known_ids:
                    await asyncio.to_thread(shutil.rmtree, entry, True)
                    removed.add(entry.name)
        return sorted(removed)


def _listener_pid(path: str) -> int | None:
    """The pid (in our namespace) of the process listening on a unix socket, if any."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.setblocking(False)  # a full backlog must not block the event loop
        try:
            s.connect(path)
        except OSError:  # refused, or a backlog that takes no one: not verifiable now
            return None
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", creds)
    return int(pid)


def _open_control_file(path: Path, flags: int) -> int:
    """Open (creating) a host-written file of the control dir, as a regular file only.

    The control dir is writable inside the sandbox, so its user can put a
    symlink, a FIFO or a directory where the host expects its own file. Root
    following such a link would write or chown a host file of the user's
    choosing (a FIFO would block the event loop): whatever is not a plain file
    is removed first, and O_NOFOLLOW closes the race with a re-planted link.
    """
    for _ in range(3):
        try:
            fd = os.open(
                path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644
            )
        except OSError:  # ELOOP (a link), ENXIO (a FIFO), EISDIR...
            fd = -1
        if fd >= 0:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(path).st_mode):
                shutil.rmtree(path)  # never follows links inside
            else:
                os.unlink(path)
    raise SandboxError(f"cannot write {path.name} in the sandbox's control directory")


def _precompile(lib_dir: str) -> None:
    """Bytecode for the staged package, made by the agent's own interpreter.

    The sandbox mounts the package read-only and the agent runs with
    PYTHONDONTWRITEBYTECODE, so without this every agent start compiled every
    cove module from source again (about half of its start time).
    """
    if not os.path.exists(AGENT_PYTHON):
        return
    subprocess.run(
        [AGENT_PYTHON, "-m", "compileall", "-q", "-j", "0", lib_dir],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    for dirpath, dirnames, filenames in os.walk(lib_dir):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


async def _tell_identity(socket: str, sandbox_id: str) -> None:
    """Tell an adopted sandbox's agent its new id (what /health reports)."""
    body = json.dumps({"sandboxId": sandbox_id}).encode()
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket), 5.0)
    try:
        fields = {
            "Host": "agent",
            "Connection": "close",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        writer.write(http1.request_head("POST", "/_cove/identity", fields) + body)
        raw = await asyncio.wait_for(reader.readuntil(http1.END), 5.0)
        status = http1.parse_status(raw).status
        if status != 200:
            raise OSError(f"agent refused its new identity: HTTP {status}")
    finally:
        writer.close()


async def _read_until(fd: int, end: bytes) -> bytes:
    """Read a pipe up to `end` (or EOF) without blocking the loop; closes `fd`.

    Not to EOF: bwrap's monitor process keeps its copy of the write end open
    for as long as the sandbox runs.

    A reader callback on the bare fd, not a pipe transport: uvloop (the
    server extra) closes a transport's fd twice, once in libuv and once
    through the file object, and between the two another thread (an rmtree
    of a deleted sandbox) could have been given that number: it saw EBADF.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = bytearray()
    done = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data.extend(chunk)
        if (not chunk or end in data) and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)  # before the close: the number may be reused at once
        os.close(fd)
    cut = data.find(end)
    return bytes(data if cut < 0 else data[: cut + len(end)])


async def _wait_pid(pid: int) -> None:
    """Wait for any process (not only a child) to exit, through a pidfd."""
    fd = os.pidfd_open(pid)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, exited)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
