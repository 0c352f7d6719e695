"""The `local` backend: sandboxes as bubblewrap + cgroups on this host.

Each sandbox gets its own unprivileged host uid (bwrap runs after the uid
drop, never with host root mapped through), PID/mount/net/IPC/UTS
namespaces, a seccomp filter, cgroup limits, and the agent as PID 1 inside.

One job per module; everything but `backend` is usable on its own, so that
another backend running the same isolation on a host (each node of the
`ray` backend) imports these rather than copying them:

    backend     LocalBackend: the runtime contract, sandbox lifecycles in order
    bwrap       the bwrap command line and the uid drop; `spawn_agent(Launch)`
    fs          what a sandbox sees of the host filesystem (bind arguments)
    seccomp     the syscall filter (classic BPF)
    cgroups     a sandbox's cgroups: limits, OOM counts, processes, removal
    workspace   a sandbox's host directories and its host uid
    control     host-written files of the control dir (config, agent log)
    socketpin   the agent socket, pinned where the sandbox cannot write
    adoption    renaming a pre-started sandbox for the request that takes it
    procs       pidfd waits, SIGTERM->grace->SIGKILL, start-up pipe reads
    staging     the cove package and runtime made readable to sandbox uids
"""

from cove.runtime.local.backend import LocalBackend, default_sandbox_root
from cove.runtime.local.bwrap import bwrap_path

__all__ = ["LocalBackend", "bwrap_path", "default_sandbox_root"]
