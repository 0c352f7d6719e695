"""File routes on bad input, cut transfers, ranges and links (issue 12, items 2 and 7).

Bad input gets a 4xx that names what is wrong and leaves nothing half-done;
a client gone mid-upload leaves no file; a link or `..` never reaches the host.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.helpers import agent_pid, wait_for
from tests.serverproc import ServerProcess


def sh(sandbox: Any, command: str) -> str:
    result = sandbox.process.exec(command)
    assert result.exit_code == 0, result.result
    return str(result.result)


def test_missing_path_is_a_404_naming_it(sandbox: Any) -> None:
    from daytona import DaytonaFileNotFoundError

    for call in (
        lambda: sandbox.fs.get_file_info("no/such/thing"),
        lambda: sandbox.fs.list_files("no/such/thing"),
        lambda: sandbox.fs.delete_file("no/such/thing"),
        lambda: sandbox.fs.download_file("no/such/thing"),
        lambda: sandbox.fs.move_files("no/such/thing", "elsewhere"),
    ):
        with pytest.raises(DaytonaFileNotFoundError) as err:
            call()
        assert "no/such/thing" in str(err.value)


def test_bad_mode_is_a_400_and_changes_nothing(sandbox: Any) -> None:
    from daytona import DaytonaBadRequestError

    sh(sandbox, "echo m > mode.txt && chmod 644 mode.txt")
    for mode in ("99", "rwx", "77777"):
        with pytest.raises(DaytonaBadRequestError) as err:
            sandbox.fs.set_file_permissions("mode.txt", mode=mode)
        assert repr(mode) in str(err.value)
        with pytest.raises(DaytonaBadRequestError):
            sandbox.fs.create_folder("never-made", mode)
    assert sh(sandbox, "stat -c %a mode.txt; test -e never-made || echo absent") == "644\nabsent\n"


def test_move_onto_an_existing_target_is_a_409(sandbox: Any) -> None:
    from daytona import DaytonaConflictError

    sh(sandbox, "echo a > mv-a && echo b > mv-b")
    with pytest.raises(DaytonaConflictError) as err:
        sandbox.fs.move_files("mv-a", "mv-b")
    assert "mv-b" in str(err.value)
    assert sh(sandbox, "cat mv-a mv-b") == "a\nb\n"


def test_unknown_owner_is_a_400(sandbox: Any) -> None:
    from daytona import DaytonaBadRequestError

    sh(sandbox, "touch own.txt")
    with pytest.raises(DaytonaBadRequestError, match="no-such-user"):
        sandbox.fs.set_file_permissions("own.txt", owner="no-such-user")
    for name in ("a\x00b", "x" * 5000):  # no name can hold a NUL; none is that long
        with pytest.raises(DaytonaBadRequestError):
            sandbox.fs.set_file_permissions("own.txt", group=name)


def _upload_head(server: ServerProcess, sandbox_id: str, boundary: str, length: int) -> bytes:
    return (
        f"POST /toolbox/{sandbox_id}/files/bulk-upload HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _file_part_start(boundary: str, path: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files[0].path"\r\n\r\n'
        f"{path}\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="files[0].file"; filename="f"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _connect(server: ServerProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_answer(conn: socket.socket) -> str:
    """A whole Content-Length answer (its head and body may arrive apart)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _answer_size(data):
        more = conn.recv(65536)
        if not more:
            break
        data += more
    return data.decode("latin-1")


def _answer_size(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(data)


def test_body_larger_than_the_free_disk_is_a_507(server: ServerProcess, sandbox: Any) -> None:
    boundary = "b" + uuid.uuid4().hex
    with _connect(server) as conn:
        # Claims a petabyte; sends only the start. The agent refuses before writing.
        conn.sendall(_upload_head(server, sandbox.id, boundary, 10**15))
        conn.sendall(_file_part_start(boundary, "huge.bin") + b"x" * 65536)
        answer = read_answer(conn)
    assert answer.startswith("HTTP/1.1 507"), answer[:200]
    assert "bytes free" in answer
    assert sh(sandbox, "ls -a | grep -c 'huge.bin' || true").strip() == "0"


def test_client_gone_mid_upload_leaves_no_file(server: ServerProcess, sandbox: Any) -> None:
    boundary = "b" + uuid.uuid4().hex
    sh(sandbox, "mkdir -p partial && echo old > partial/kept.txt")
    with _connect(server) as conn:
        conn.sendall(_upload_head(server, sandbox.id, boundary, 50_000_000))
        conn.sendall(_file_part_start(boundary, "partial/kept.txt") + b"new" * 1_000_000)
        # The bytes reached the agent: its temporary file is there.
        wait_for(lambda: "cove-upload" in sh(sandbox, "ls -a partial"), 30, "the upload to start")
    # Gone mid-body: the temporary file goes, the old content stays.
    wait_for(lambda: "cove-upload" not in sh(sandbox, "ls -a partial"), 30, "the upload's cleanup")
    assert sh(sandbox, "cat partial/kept.txt") == "old\n"


def test_range_requests(api: httpx.Client, sandbox: Any) -> None:
    sh(sandbox, "printf 0123456789 > range.txt")
    url = f"/toolbox/{sandbox.id}/files/download"
    whole = api.get(url, params={"path": "range.txt"})
    assert (whole.status_code, whole.content) == (200, b"0123456789")
    assert whole.headers["accept-ranges"] == "bytes"
    part = api.get(url, params={"path": "range.txt"}, headers={"Range": "bytes=2-4"})
    assert (part.status_code, part.content) == (206, b"234")
    assert part.headers["content-range"] == "bytes 2-4/10"
    tail = api.get(url, params={"path": "range.txt"}, headers={"Range": "bytes=-3"})
    assert (tail.status_code, tail.content) == (206, b"789")
    bad = api.get(url, params={"path": "range.txt"}, headers={"Range": "bytes=50-"})
    assert bad.status_code == 416 and "outside" in bad.json()["message"]


def test_links_and_dotdot_stay_inside_the_sandbox(sandbox: Any, tmp_path: Path) -> None:
    from daytona import DaytonaError

    canary = tmp_path / "host-canary.txt"  # on the host, world-readable
    canary.write_text("host secret\n")
    canary.chmod(0o644)
    tmp_path.chmod(0o755)
    sh(sandbox, f"ln -sfn {canary} link-to-host && ln -sfn {tmp_path} dir-link-to-host")
    for path in ("link-to-host", "../" * 12 + str(canary).lstrip("/")):
        with pytest.raises(DaytonaError) as err:
            sandbox.fs.download_file(path)
        assert err.value.status_code == 404
    # Writing through a link to a host directory: that directory is not in the
    # sandbox, so the link is a dangling name there, which is not a directory.
    with pytest.raises(DaytonaError) as err:
        sandbox.fs.upload_file(b"planted", "dir-link-to-host/planted.txt")
    assert err.value.status_code == 400 and "dir-link-to-host" in str(err.value)
    assert not (tmp_path / "planted.txt").exists()
    assert canary.read_text() == "host secret\n"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise LookupError(pid)


@pytest.mark.timeout(300)  # 400 MiB through three processes on a shared machine
def test_a_200_mib_round_trip_keeps_server_and_agent_rss_bounded(
    server: ServerProcess, sandbox: Any, tmp_path: Path
) -> None:
    """The bench moves 2 GiB; here 200 MiB must already show no file held in memory."""
    size = 200 << 20
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    assert server.proc is not None
    pids = {"server": server.proc.pid, "agent": agent_pid(sandbox.id)}
    before = {name: rss_mib(pid) for name, pid in pids.items()}
    peak = dict(before)
    stop = threading.Event()

    def sample() -> None:  # a measurement, not a wait: every 10 ms until told to stop
        while not stop.wait(0.01):
            for name, pid in pids.items():
                peak[name] = max(peak[name], rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    boundary = "b" + uuid.uuid4().hex
    part = _file_part_start(boundary, "rss.bin")
    tail = f"\r\n--{boundary}--\r\n".encode()
    try:
        with _connect(server) as conn, open(src, "rb") as f:
            conn.sendall(_upload_head(server, sandbox.id, boundary, len(part) + size + len(tail)))
            conn.sendall(part)
            conn.sendfile(f)
            conn.sendall(tail)
            assert read_answer(conn).startswith("HTTP/1.1 200")
        got = hashlib.sha256()
        received = 0
        with _connect(server) as conn:
            auth = f"Authorization: Bearer {server.key}\r\n"
            conn.sendall(
                f"GET /toolbox/{sandbox.id}/files/download?path=rss.bin HTTP/1.1\r\n"
                f"Host: x\r\n{auth}Connection: close\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            head, _, body = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            while body or (body := conn.recv(1 << 20)):  # until the server closes
                got.update(body)
                received += len(body)
                body = b""
    finally:
        stop.set()
        sampler.join()
    assert received == size
    assert got.hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()
    growth = {name: peak[name] - before[name] for name in pids}
    assert max(growth.values()) < 64, growth
