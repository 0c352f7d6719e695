"""A sandbox's network namespace and the veth pair into it (iproute2).

Three `ip` runs (~9 ms together, measured): the namespace, the pair with
its host side addressed, and the sandbox side addressed with loopback up
and a default route through the host. IPv6 is off on both ends of the pair
(`disable_ipv6`), so a sandbox has no address family the rules do not
cover; its loopback keeps ::1, which programs that say "localhost" use.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading

from cove.runtime.local.net.alloc import Slot

NETNS_DIR = "/run/netns"


def _ip(*args: str, stdin: str | None = None) -> None:
    done = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def netns_path(slot: Slot) -> str:
    return f"{NETNS_DIR}/{slot.netns}"


def create(slot: Slot) -> None:
    """Namespace, veth pair and addresses for `slot` (blocking: run in a thread)."""
    create_namespace(slot)
    create_pair(slot)


def create_namespace(slot: Slot) -> None:
    """The namespace alone: no interface in it but a down `lo` (blocking)."""
    remove(slot)  # a leftover of the same index (e.g. a crash mid-create) goes first
    _ip("netns", "add", slot.netns)


def create_pair(slot: Slot) -> None:
    """The veth pair and addresses of `slot`'s existing namespace (blocking).

    The namespace may already hold a running sandbox: it sees its `eth0`
    appear, which is what a cable plugged in later looks like.
    """
    try:
        _ip("-batch", "-", stdin=(
            f"link add {slot.host_if} type veth peer name eth0 netns {slot.netns}\n"
            f"addr add {slot.gateway}/30 dev {slot.host_if}\n"
            f"link set {slot.host_if} up\n"
        ))  # fmt: skip
        _ip("-n", slot.netns, "-batch", "-", stdin=(
            f"addr add {slot.address}/30 dev eth0\n"
            "link set lo up\n"
            "link set eth0 up\n"
            f"route add default via {slot.gateway}\n"
        ))  # fmt: skip
        _disable_ipv6(slot)
        with open(f"/proc/sys/net/ipv6/conf/{slot.host_if}/disable_ipv6", "w") as f:
            f.write("1")
    except BaseException:
        remove(slot)
        raise


def _disable_ipv6(slot: Slot) -> None:
    """Write the namespace's own sysctls from a thread that joined it.

    A network namespace is per thread, and /proc/sys/net shows the opening
    thread's: a thread of our own joins, writes, and rejoins the host's
    namespace before it ends (no fork of a threaded process).
    """
    errors: list[BaseException] = []

    def run() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(netns_path(slot), os.O_RDONLY)
        try:
            setns(target)
            try:
                for name in ("default", "eth0"):
                    with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
                        f.write("1")
            finally:
                setns(home)
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.close(home)
            os.close(target)

    t = threading.Thread(target=run, name=f"netns-{slot.netns}")
    t.start()
    t.join()
    if errors:
        raise OSError(f"could not turn IPv6 off in {slot.netns}: {errors[0]}")


_libc = ctypes.CDLL(None, use_errno=True)  # resolved once: a forked child only calls it
CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    """Join the network namespace open at `fd` (os.setns arrives in Python 3.12).

    Safe in a child between fork and exec: no allocation, no dlopen.
    """
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET) failed")


def remove(slot: Slot) -> None:
    """Namespace and pair gone (deleting the namespace deletes its veth end and so the pair)."""
    if os.path.exists(netns_path(slot)):
        _ip("netns", "delete", slot.netns)
    if os.path.exists(f"/sys/class/net/{slot.host_if}"):
        subprocess.run(["ip", "link", "delete", slot.host_if], capture_output=True, check=False)


def exists(slot: Slot) -> bool:
    return os.path.exists(netns_path(slot))
