"""6. Files: a 2 GiB round trip through server and agent, and 1,000 small files at once.

The upload is Daytona's multipart `POST /files/bulk-upload`, the download
`GET /files/download`, both streamed by a lean client over loopback; the
baseline is `cp` of the same file on the same disk in the same run. While a
transfer runs, the RSS of the server and of the sandbox's agent is sampled
(every 20 ms): the growth over their RSS before it is what the transfer cost
in memory, to be compared with the 64 MiB bound.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.client import Cove
from bench.stats import Row, Summary
from cove.wire import http1
from tests.reliability.helpers import agent_pid

TITLE_RT = "Files: a {size} file {what}ed through server and agent"
RSS_BOUND_MIB = 64
# "Close to a local disk copy" as a number: at least half of `cp`'s rate.
CP_FRACTION = 0.5
PIECE = 1 << 20


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for pid {pid}")


class PeakRss:
    """The highest RSS of some processes while a block runs, over their RSS before it."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {name: rss_mib(pid) for name, pid in pids.items()}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mib(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth(self) -> dict[str, float]:
        return {name: self.peak[name] - self.before[name] for name in self.pids}


def make_file(path: Path, nbytes: int) -> None:
    block = os.urandom(PIECE)
    with open(path, "wb") as f:
        for _ in range(nbytes // PIECE):
            f.write(block)


def _connect(cove: Cove) -> socket.socket:
    return socket.create_connection(("127.0.0.1", cove.server.port))


def _head(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body bytes read past the head."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed before answering")
        buf += data
    head = http1.parse_status(bytes(buf[: end + 4]))
    return head.status, head.headers, bytes(buf[end + 4 :])


def upload(cove: Cove, sid: str, local: Path, remote: str) -> float:
    """Daytona's multipart upload; the file goes out by `sendfile` (a lean client: the
    figure is the server's and the agent's, not an HTTP library's)."""
    boundary = uuid.uuid4().hex
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files[0].path"\r\n\r\n'
        f"{remote}\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="files[0].file"; filename="f"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(part) + local.stat().st_size + len(tail)
    head = (
        f"POST /toolbox/{sid}/files/bulk-upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {cove.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    with _connect(cove) as sock, open(local, "rb") as f:
        sock.sendall(head + part)
        sock.sendfile(f)
        sock.sendall(tail)
        status, _, rest = _head(sock, bytearray())
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"upload: HTTP {status} {rest[:300]!r}")
    return elapsed


def download(cove: Cove, sid: str, remote: str, local: Path) -> float:
    t0 = time.perf_counter()
    head = (
        f"GET /toolbox/{sid}/files/download?path={remote} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {cove.headers['Authorization']}\r\nConnection: close\r\n\r\n"
    ).encode()
    with _connect(cove) as sock, open(local, "wb") as f:
        sock.sendall(head)
        status, headers, rest = _head(sock, bytearray())
        if status != 200:
            raise RuntimeError(f"download: HTTP {status} {rest[:300]!r}")
        left = int(headers["content-length"]) - len(rest)
        f.write(rest)
        buf = bytearray(PIECE)
        view = memoryview(buf)
        while left > 0:
            n = sock.recv_into(view, min(PIECE, left))
            if not n:
                raise RuntimeError(f"download cut with {left} bytes to go")
            f.write(view[:n])
            left -= n
    return time.perf_counter() - t0


def local_cp(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    elapsed = time.perf_counter() - t0
    dst.unlink()
    return elapsed


def round_trip(cove: Cove, sid: str, nbytes: int, runs: int, workdir: Path) -> list[Row]:
    mib = nbytes / (1 << 20)
    size = f"{nbytes / (1 << 30):g} GiB" if nbytes >= 1 << 30 else f"{mib:.0f} MiB"
    src, back = workdir / "src.bin", workdir / "back.bin"
    make_file(src, nbytes)
    pids = {"server": cove.server.proc.pid, "agent": agent_pid(sid)}  # type: ignore[union-attr]
    up_rates, down_rates, cp_rates, null_rates = [], [], [], []
    growth = {"server": 0.0, "agent": 0.0}
    for _ in range(runs):
        cp_rates.append(mib / local_cp(src, workdir / "cp.bin"))
        with PeakRss(pids) as peak:
            up_rates.append(mib / upload(cove, sid, src, "big.bin"))
            down_rates.append(mib / download(cove, sid, "big.bin", back))
            # The same without the local disk: what server and agent deliver.
            null_rates.append(mib / download(cove, sid, "big.bin", Path(os.devnull)))
        for name, grew in peak.growth().items():
            growth[name] = max(growth[name], grew)
        if back.stat().st_size != nbytes:
            raise RuntimeError(f"downloaded {back.stat().st_size} of {nbytes} bytes")
        back.unlink()
        cove.http.delete(f"/toolbox/{sid}/files", params={"path": "big.bin"})
    src.unlink()
    bounded = max(growth.values()) < RSS_BOUND_MIB
    rss = (
        f"RSS growth at most {growth['server']:.0f} MiB (server) and "
        f"{growth['agent']:.0f} MiB (agent) over the transfers, bound {RSS_BOUND_MIB} MiB"
    )
    baseline = Summary.of(cp_rates, "MiB/s")
    null = sorted(null_rates)[len(null_rates) // 2]
    extra = {
        "upload": "",
        "download": f"; into /dev/null instead of a local file: {null:.0f} MiB/s (median)",
    }
    rows = []
    for key, what, rates in (
        ("files-up", "upload", up_rates),
        ("files-down", "download", down_rates),
    ):
        row = Row(
            key,
            TITLE_RT.format(size=size, what=what),
            Summary.of(rates, "MiB/s"),
            baseline,
            f"`cp` of the same {size} file on the same disk",
            f">= {CP_FRACTION:.0%} of a local cp; RSS growth < {RSS_BOUND_MIB} MiB",
            note=f"{rss}{extra[what]}; higher is better; ratio = Cove / cp",
            samples=rates,
            baseline_samples=cp_rates,
        )
        row.met = bounded and row.ratio is not None and row.ratio >= CP_FRACTION
        rows.append(row)
    return rows


def many_small(cove: Cove, sid: str, count: int, runs: int) -> Row:
    """`count` files of 1 KiB in one bulk upload (the SDK's `upload_files`)."""
    boundary = uuid.uuid4().hex
    parts = []
    for i in range(count):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files[{i}].path"\r\n\r\n'
            f"small/{i % 10}/f{i}.txt\r\n"
        )
    for i in range(count):
        parts.append(
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files[{i}].file"; filename="f{i}"\r\n\r\n'
            + "x" * 1024
            + "\r\n"
        )
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = cove.http.post(f"/toolbox/{sid}/files/bulk-upload", content=body, headers=headers)
        took.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200 or len(r.json()["files"]) != count:
            raise RuntimeError(f"bulk upload: HTTP {r.status_code} {r.text[:300]}")
        cove.http.delete(f"/toolbox/{sid}/files", params={"path": "small", "recursive": "true"})
    row = Row(
        "files-many",
        f"Files: {count} files of 1 KiB in one upload_files call",
        Summary.of(took, "ms"),
        target="well under 2 s",
        note="the whole call, client to agent and back; lower is better",
        samples=took,
    )
    row.met = row.cove is not None and row.cove.median < 2000
    return row


def measure(cove: Cove, sid: str, nbytes: int, runs: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="cove-bench-files-", dir=cove.server.data_dir) as tmp:
        rows = round_trip(cove, sid, nbytes, runs, Path(tmp))
    return [*rows, many_small(cove, sid, 1000, max(3, runs * 3))]
