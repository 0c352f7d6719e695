"""The seccomp filter every sandbox runs under, as classic BPF for `bwrap --seccomp`.

A deny list in the spirit of Docker's default profile: the namespaces give
isolation, this removes kernel surface the sandbox has no business touching
(mounts, modules, keyrings, bpf, perf, new namespaces). Denied calls fail
with EPERM so programs see an ordinary error; clone3 answers ENOSYS, because
its flags live in memory a filter cannot read and libc then falls back to
clone, whose flags the filter does check. Foreign ABIs (i386, x32) are killed.
"""

from __future__ import annotations

import errno
import platform
import struct

# BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000

OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16

CLONE_NS_FLAGS = (
    0x00000080  # NEWTIME
    | 0x00020000  # NEWNS
    | 0x02000000  # NEWCGROUP
    | 0x04000000  # NEWUTS
    | 0x08000000  # NEWIPC
    | 0x10000000  # NEWUSER
    | 0x20000000  # NEWPID
    | 0x40000000  # NEWNET
)

DENIED = [
    "mount",
    "umount2",
    "pivot_root",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "acct",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "quotactl",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "setns",
    "unshare",
    "syslog",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # io_uring: a large, young kernel surface behind many recent privilege
    # escalations; Docker's default profile denies it too.
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
]

# Syscall numbers per architecture: (audit arch, {name: nr}).
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "swapon": 167,
            "swapoff": 168,
            "reboot": 169,
            "sethostname": 170,
            "setdomainname": 171,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "acct": 163,
            "settimeofday": 164,
            "clock_settime": 227,
            "adjtimex": 159,
            "quotactl": 179,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "open_by_handle_at": 304,
            "name_to_handle_at": 303,
            "setns": 308,
            "unshare": 272,
            "syslog": 103,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "move_mount": 429,
            "open_tree": 428,
            "mount_setattr": 442,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "clone": 56,
            "clone3": 435,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "swapon": 224,
            "swapoff": 225,
            "reboot": 142,
            "sethostname": 161,
            "setdomainname": 162,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "acct": 89,
            "settimeofday": 170,
            "clock_settime": 112,
            "adjtimex": 171,
            "quotactl": 60,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "open_by_handle_at": 265,
            "name_to_handle_at": 264,
            "setns": 268,
            "unshare": 97,
            "syslog": 116,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "move_mount": 429,
            "open_tree": 428,
            "mount_setattr": 442,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "clone": 220,
            "clone3": 435,
        },
    ),
}


# Root of a user namespace that maps one id (a build step, a USER root
# sandbox) cannot give a file to any other owner: chown to, say, gid 50
# (`staff`, as fontconfig's postinst does) fails with EINVAL and takes the
# package install with it. Image files all belong to one host uid anyway
# (layers are stored with a single owner), so there these calls succeed
# without changing anything, as under fakeroot.
OWNERSHIP_CALLS: dict[str, dict[str, int]] = {
    "x86_64": {"chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260},
    "aarch64": {"fchown": 55, "fchownat": 54},
}


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def build_filter(machine: str | None = None, *, ownership_noop: bool = False) -> bytes:
    """The filter program for this (or the named) machine, as `struct sock_filter[]`.

    `ownership_noop`: chown and its kin return success and do nothing (see
    OWNERSHIP_CALLS).
    """
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise RuntimeError(f"no seccomp syscall table for architecture {machine!r}")
    audit_arch, nrs = ARCHES[machine]
    eperm = RET_ERRNO | errno.EPERM
    prog: list[tuple[int, int, int, int]] = [
        _ins(LD_W_ABS, OFF_ARCH),
        _ins(JEQ_K, audit_arch, jt=1),
        _ins(RET_K, RET_KILL_PROCESS),
        _ins(LD_W_ABS, OFF_NR),
    ]
    if machine == "x86_64":  # x32 ABI numbers have bit 30 set
        prog += [_ins(JGE_K, 0x40000000, jf=1), _ins(RET_K, RET_KILL_PROCESS)]
    for name in DENIED:
        prog += [_ins(JEQ_K, nrs[name], jf=1), _ins(RET_K, eperm)]
    if ownership_noop:
        for nr in OWNERSHIP_CALLS[machine].values():
            prog += [_ins(JEQ_K, nr, jf=1), _ins(RET_K, RET_ERRNO | 0)]
    prog += [
        _ins(JEQ_K, nrs["clone3"], jf=1),
        _ins(RET_K, RET_ERRNO | errno.ENOSYS),
        _ins(JEQ_K, nrs["clone"], jf=3),
        _ins(LD_W_ABS, OFF_ARG0),  # low 32 bits of the flags (little endian)
        _ins(JSET_K, CLONE_NS_FLAGS, jf=1),
        _ins(RET_K, eperm),
        _ins(RET_K, RET_ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)
