"""Host side of a sandbox's cgroups: make them, set the limits, clean them up.

Layout (v1; the machines this was built on mount v1 memory/pids/cpu):

    <ctrl>/<our cgroup>/<parent>/<sid>          agent + bwrap: limit + a reserve
    <ctrl>/<our cgroup>/<parent>/<sid>/user     user code: the limits asked for
    freezer/<our cgroup>/<parent>/<sid>/track   owned by the sandbox uid; the agent
                                                makes one child per command in it

`parent` is per control plane (`cove-<instance>`), so that two servers on
one host never take each other's sandboxes for leftovers.

The reserve keeps the agent alive when user code fills its own cgroup: a
fork bomb hits the user pids limit, an allocation the user memory limit, and
the OOM killer picks inside the user cgroup. v2 has one tree with the same
shape (`agent` and `user` leaves, tracking children under `user`).

`binds()` says which host paths the backend binds into the sandbox, at the
names `cove.agent.proc.cgroups.Tracker` looks for.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

ROOT = "/sys/fs/cgroup"
AGENT_RESERVE_MEMORY = 64 * 1024 * 1024
AGENT_RESERVE_PIDS = 64
CPU_PERIOD_US = 100_000


@dataclass
class Limits:
    cpus: float
    memory_bytes: int
    pids: int


def _own_path(controller: str) -> str:
    """Our own cgroup in `controller`'s hierarchy ("" for v2), so sandboxes nest under it."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(",") or (controller == "" and ctrls == ""):
                return path.strip("/")
    return ""


def detect() -> str | None:
    """'v1', 'v2' or None (no usable cgroups: limits cannot be enforced)."""
    if not os.access(ROOT, os.W_OK):
        return None
    if os.path.exists(f"{ROOT}/memory/memory.limit_in_bytes") and os.path.isdir(f"{ROOT}/pids"):
        return "v1"
    try:
        with open(f"{ROOT}/cgroup.controllers") as f:
            if {"memory", "pids"} <= set(f.read().split()):
                return "v2"
    except OSError:
        pass
    return None


def _write(path: str, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _read_int(path: str) -> int:
    return int(_read(path).strip())


def _read_stat(path: str) -> dict[str, int]:
    """A `key value` per line file (memory.stat, cpu.stat); missing file: empty."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    return out


@dataclass
class Usage:
    """One reading of a sandbox's cgroups."""

    memory_bytes: int  # the whole sandbox (agent included)
    user_memory_bytes: int  # user code's cgroup, what its limit applies to
    # ...less its inactive page cache, which the kernel drops before refusing a
    # lower limit: what a resize must leave room for.
    user_working_set: int
    cache_bytes: int  # page cache inside `memory_bytes` (tmpfs /tmp counts here)
    cpu_seconds: float  # CPU time used since the cgroup was made


@dataclass
class SandboxCgroups:
    """The cgroup directories of one sandbox (persisted with its runtime state)."""

    version: str
    dirs: dict[str, str] = field(default_factory=dict)  # controller -> <sid> dir

    @classmethod
    def create(
        cls, parent: str, sid: str, limits: Limits, uid: int, version: str
    ) -> SandboxCgroups:
        cg = cls(version)
        if version == "v1":
            for ctrl in _v1_controllers():
                own = _own_path(ctrl)
                base = os.path.join(ROOT, ctrl, own, parent, sid)
                os.makedirs(
                    os.path.join(base, "user" if ctrl != "freezer" else "track"), exist_ok=True
                )
                cg.dirs[ctrl] = base
            mem, pids, cpu = cg.dirs["memory"], cg.dirs["pids"], cg.dirs["cpu"]
            _write(f"{mem}/memory.limit_in_bytes", limits.memory_bytes + AGENT_RESERVE_MEMORY)
            _write(f"{mem}/user/memory.limit_in_bytes", limits.memory_bytes)
            _write(f"{pids}/pids.max", limits.pids + AGENT_RESERVE_PIDS)
            _write(f"{pids}/user/pids.max", limits.pids)
            _write(f"{cpu}/cpu.cfs_period_us", CPU_PERIOD_US)
            _write(f"{cpu}/cpu.cfs_quota_us", int(limits.cpus * CPU_PERIOD_US))
            os.chown(f"{mem}/user/cgroup.procs", uid, -1)
            os.chown(f"{pids}/user/cgroup.procs", uid, -1)
            track = os.path.join(cg.dirs["freezer"], "track")
            os.chown(track, uid, uid)
            for name in ("cgroup.procs", "tasks", "freezer.state"):
                os.chown(os.path.join(track, name), uid, -1)
        else:
            base = os.path.join(ROOT, _own_path(""), parent, sid)
            os.makedirs(base, exist_ok=True)
            _enable(os.path.dirname(base))
            _enable(base)
            for leaf in ("agent", "user"):
                os.makedirs(os.path.join(base, leaf), exist_ok=True)
            _write(f"{base}/memory.max", limits.memory_bytes + AGENT_RESERVE_MEMORY)
            _write(f"{base}/pids.max", limits.pids + AGENT_RESERVE_PIDS)
            _write(f"{base}/cpu.max", f"{int(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
            _write(f"{base}/user/memory.max", limits.memory_bytes)
            _write(f"{base}/user/pids.max", limits.pids)
            # Delegation: the agent moves children from agent/ into user/<cmd>,
            # which needs write access to their common ancestor's procs file.
            user = os.path.join(base, "user")
            os.chown(user, uid, uid)
            for name in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
                os.chown(os.path.join(user, name), uid, -1)
            os.chown(os.path.join(base, "cgroup.procs"), uid, -1)
            cg.dirs["unified"] = base
        return cg

    # -- in-place changes and readings (resize, metrics) ---------------------

    def set_limits(self, cpus: float, memory_bytes: int) -> None:
        """Change a running sandbox's CPU and memory limits; its processes keep running.

        The user cgroup and the sandbox cgroup above it (user limit + the agent's
        reserve) move together, in the order that never leaves a child above its
        parent. The kernel refuses (EBUSY) a memory limit it cannot reclaim
        down to; callers check usage first and get a clear error either way.
        """
        outer = memory_bytes + AGENT_RESERVE_MEMORY
        quota = int(cpus * CPU_PERIOD_US)
        if self.version == "v1":
            mem, cpu = self.dirs["memory"], self.dirs["cpu"]
            pairs = [(f"{mem}/memory.limit_in_bytes", outer),
                     (f"{mem}/user/memory.limit_in_bytes", memory_bytes)]  # fmt: skip
            _write(f"{cpu}/cpu.cfs_quota_us", quota)
        else:
            base = self.dirs["unified"]
            pairs = [(f"{base}/memory.max", outer), (f"{base}/user/memory.max", memory_bytes)]
            _write(f"{base}/cpu.max", f"{quota} {CPU_PERIOD_US}")
        if memory_bytes < self.memory_limit():
            pairs.reverse()  # shrinking: the child first
        for path, value in pairs:
            _write(path, value)

    def memory_limit(self) -> int:
        """The user cgroup's memory limit in bytes (what the sandbox was given)."""
        if self.version == "v1":
            return _read_int(f"{self.dirs['memory']}/user/memory.limit_in_bytes")
        raw = _read(f"{self.dirs['unified']}/user/memory.max").strip()
        return (1 << 63) - 1 if raw == "max" else int(raw)

    def cpu_quota(self) -> float:
        """CPUs the sandbox may use (CFS quota / period)."""
        if self.version == "v1":
            quota = _read_int(f"{self.dirs['cpu']}/cpu.cfs_quota_us")
            period = _read_int(f"{self.dirs['cpu']}/cpu.cfs_period_us")
        else:
            q, _, p = _read(f"{self.dirs['unified']}/cpu.max").partition(" ")
            quota, period = (-1 if q == "max" else int(q)), int(p)
        return quota / period if quota > 0 else 0.0

    def usage(self) -> Usage:
        """Memory (whole sandbox, user code's part, page cache) and CPU time so far."""
        if self.version == "v1":
            mem = self.dirs["memory"]
            stat = _read_stat(f"{mem}/memory.stat")
            acct = self.dirs.get("cpuacct")
            cpu_ns = _read_int(f"{acct}/cpuacct.usage") if acct else 0
            user_stat = _read_stat(f"{mem}/user/memory.stat")
            user = _read_int(f"{mem}/user/memory.usage_in_bytes")
            return Usage(
                memory_bytes=_read_int(f"{mem}/memory.usage_in_bytes"),
                user_memory_bytes=user,
                user_working_set=max(0, user - user_stat.get("total_inactive_file", 0)),
                cache_bytes=stat.get("total_cache", 0),
                cpu_seconds=cpu_ns / 1e9,
            )
        base = self.dirs["unified"]
        stat = _read_stat(f"{base}/memory.stat")
        cpu = _read_stat(f"{base}/cpu.stat")
        user = _read_int(f"{base}/user/memory.current")
        user_stat = _read_stat(f"{base}/user/memory.stat")
        return Usage(
            memory_bytes=_read_int(f"{base}/memory.current"),
            user_memory_bytes=user,
            user_working_set=max(0, user - user_stat.get("inactive_file", 0)),
            cache_bytes=stat.get("file", 0),
            cpu_seconds=cpu.get("usage_usec", 0) / 1e6,
        )

    def launcher_procs(self) -> list[str]:
        """cgroup.procs files the sandbox's first process joins (as root, before exec)."""
        if self.version == "v1":
            return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]
        return [os.path.join(self.dirs["unified"], "agent", "cgroup.procs")]

    def binds(self) -> dict[str, str]:
        """Name inside the sandbox's cgroup dir -> host path to bind there."""
        if self.version == "v1":
            return {
                "memory.procs": f"{self.dirs['memory']}/user/cgroup.procs",
                "pids.procs": f"{self.dirs['pids']}/user/cgroup.procs",
                "track": f"{self.dirs['freezer']}/track",
            }
        return {"track": f"{self.dirs['unified']}/user"}

    def oom_kills(self) -> int:
        """How many processes the OOM killer took in this sandbox so far."""
        if self.version == "v1":
            paths = [
                f"{self.dirs['memory']}/memory.oom_control",
                f"{self.dirs['memory']}/user/memory.oom_control",
            ]
        else:
            paths = [f"{self.dirs['unified']}/memory.events"]
        total = 0
        for path in paths:
            with contextlib.suppress(OSError), open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        total += int(value)
        return total

    def processes(self) -> list[int]:
        """Host pids still in the sandbox (any controller)."""
        pids: set[int] = set()
        for base in self.dirs.values():
            for dirpath, _, files in os.walk(base):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError), open(f"{dirpath}/cgroup.procs") as f:
                        pids.update(int(x) for x in f.read().split())
        return sorted(pids)

    def remove(self, wait: float = 2.0) -> None:
        """Remove the directories, deepest first; they must be empty of processes.

        The kernel unlinks an exited task from its cgroup slightly after the
        exit is visible, so an EBUSY is retried briefly (bounded). v1 offers
        no event for "now empty" to wait on, hence the short sleeps: this
        blocks, and async callers run it in a thread.
        """
        deadline = time.monotonic() + wait
        for base in self.dirs.values():
            if not os.path.isdir(base):
                continue
            for dirpath, _, _ in sorted(os.walk(base), key=lambda w: -w[0].count("/")):
                while True:
                    try:
                        os.rmdir(dirpath)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.01)


def _enable(path: str) -> None:
    with contextlib.suppress(OSError):
        _write(f"{path}/cgroup.subtree_control", "+memory +pids +cpu")


def _v1_controllers() -> tuple[str, ...]:
    """v1 hierarchies a sandbox gets a cgroup in; cpuacct (CPU time used) where mounted."""
    if os.path.exists(f"{ROOT}/cpuacct/cpuacct.usage"):
        return ("memory", "pids", "cpu", "freezer", "cpuacct")
    return ("memory", "pids", "cpu", "freezer")


def _parent_dirs(version: str, parent: str) -> list[str]:
    ctrls = _v1_controllers() if version == "v1" else ("",)
    return [os.path.join(ROOT, ctrl, _own_path(ctrl), parent) for ctrl in ctrls]


def remove_parent_if_empty(version: str, parent: str) -> None:
    """Drop a control plane's `parent` dirs once no sandbox cgroup is left in them."""
    for top in _parent_dirs(version, parent):
        with contextlib.suppress(OSError):  # still holds sandboxes, or already gone
            os.rmdir(top)


def list_leftovers(version: str, parent: str) -> dict[str, list[str]]:
    """Sandbox ids with cgroups under our `parent` dirs (for start-up cleanup)."""
    found: dict[str, list[str]] = {}
    for top in _parent_dirs(version, parent):
        with contextlib.suppress(OSError):
            for sid in os.listdir(top):
                if os.path.isdir(os.path.join(top, sid)):
                    found.setdefault(sid, []).append(os.path.join(top, sid))
    return found
