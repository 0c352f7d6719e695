"""What each Cove figure is compared with, measured on this host in the same run."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

from bench.stats import stopwatch, timed

# The host interpreter the sandboxes run too (Debian's), so the ratio compares
# like with like; falls back to whatever python3 is first on PATH.
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


def bwrap_true_argv() -> list[str] | None:
    """The isolation floor: bubblewrap with the same namespaces running /bin/true."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    argv = [
        bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
        "--unshare-uts", "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
    ]  # fmt: skip
    for name in ("bin", "sbin", "lib", "lib64"):
        path = f"/{name}"
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    return [*argv, "/bin/true"]


def host_true(runs: int) -> list[float]:
    return timed(lambda: subprocess.run(["true"], check=True), runs)


def host_python(runs: int) -> list[float]:
    argv = [HOST_PYTHON, "-c", "print(1)"]
    return timed(lambda: subprocess.run(argv, check=True, capture_output=True), runs)


def bwrap_true(runs: int) -> list[float]:
    argv = bwrap_true_argv()
    if argv is None:
        return []
    return timed(lambda: subprocess.run(argv, check=True), runs)


def bwrap_burst(n: int) -> float:
    """Milliseconds until `n` bwrap-isolated /bin/true started at once have all exited."""
    argv = bwrap_true_argv()
    if argv is None:
        return float("nan")

    async def burst() -> None:
        procs = [await asyncio.create_subprocess_exec(*argv) for _ in range(n)]
        await asyncio.gather(*(p.wait() for p in procs))

    out: list[float] = []
    with stopwatch(out):
        asyncio.run(burst())
    return out[0]


def host_concurrent_true(workers: int, per_worker: int) -> tuple[list[float], float]:
    """Per-call ms and calls/s of `true` from `workers` concurrent loops on the host."""

    async def worker(lat: list[float]) -> None:
        for _ in range(per_worker):
            t0 = time.perf_counter()
            p = await asyncio.create_subprocess_exec("true")
            await p.wait()
            lat.append((time.perf_counter() - t0) * 1000)

    async def run() -> list[float]:
        lat: list[float] = []
        await asyncio.gather(*(worker(lat) for _ in range(workers)))
        return lat

    t0 = time.perf_counter()
    lat = asyncio.run(run())
    return lat, len(lat) / (time.perf_counter() - t0)


def raw_pipe_throughput(nbytes: int) -> float:
    """MiB/s of `head -c N /dev/zero` read through a plain pipe by this process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(["head", "-c", str(nbytes), "/dev/zero"], stdout=subprocess.PIPE)
    assert p.stdout is not None
    got = 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while n := p.stdout.readinto(view):  # type: ignore[attr-defined]
        got += n
    p.wait()
    if got != nbytes:
        raise RuntimeError(f"raw pipe delivered {got} of {nbytes} bytes")
    return nbytes / (1 << 20) / (time.perf_counter() - t0)
