"""The toolbox WebSocket front (`server/wsfront.py`): refusals, handshake, relay, fallback.

Raw sockets where the bytes matter (a refused upgrade must be a plain HTTP
answer that closes the connection), the `websockets` client where the
handshake must be valid (it checks the accept key).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from cove.wire.websocket import new_key
from tests.reliability.helpers import wait_for


def _upgrade(
    server: Any, path: str, key: str | None, version: str = "13"
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send an upgrade by hand; the status, headers, body, and whether the server closed."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {new_key()}\r\n"
                f"Sec-WebSocket-Version: {version}\r\n{auth}\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"connection closed before an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            assert chunk
            body += chunk
        closed = s.recv(1) == b""  # blocks until the server closes (or the 20 s timeout)
        return int(lines[0].split(" ")[1]), headers, body, closed


@pytest.fixture
def session(api: httpx.Client, sandbox: Any) -> Iterator[str]:
    sid = f"front-{uuid.uuid4().hex[:8]}"
    api.post(f"/toolbox/{sandbox.id}/process/session", json={"sessionId": sid}).raise_for_status()
    yield sid
    api.delete(f"/toolbox/{sandbox.id}/process/session/{sid}")


def test_an_agent_refusal_is_an_http_answer_that_closes(
    server: Any, sandbox: Any, session: str
) -> None:
    path = f"/toolbox/{sandbox.id}/process/session/{session}/command/nope/logs?follow=true"
    status, headers, body, closed = _upgrade(server, path, server.key)
    assert status == 404
    assert headers["connection"] == "close" and closed
    assert "nope" in json.loads(body)["message"]


@pytest.mark.parametrize(
    ("key", "sandbox_id", "status", "words"),
    [
        (None, None, 401, "missing API key"),
        ("wrong-key", None, 401, "invalid API key"),
        ("GOOD", "no-such-sandbox", 404, "no-such-sandbox"),
    ],
)
def test_the_front_refuses_bad_keys_and_unknown_sandboxes(
    server: Any, sandbox: Any, key: str | None, sandbox_id: str | None, status: int, words: str
) -> None:
    path = f"/toolbox/{sandbox_id or sandbox.id}/process/interpreter/execute"
    got, _, body, closed = _upgrade(server, path, server.key if key == "GOOD" else key)
    assert (got, closed) == (status, True)
    envelope = json.loads(body)
    assert words in envelope["message"] and envelope["statusCode"] == status


def test_an_upgrade_of_another_websocket_version_is_a_400(server: Any, sandbox: Any) -> None:
    path = f"/toolbox/{sandbox.id}/process/interpreter/execute"
    status, _, body, closed = _upgrade(server, path, server.key, version="8")
    assert (status, closed) == (400, True)
    assert "version 13" in json.loads(body)["message"]


def test_other_paths_keep_uvicorns_websocket_handling(server: Any) -> None:
    # No WebSocket route outside /toolbox: Starlette denies it, the front stays out of it.
    status, _, _, closed = _upgrade(server, "/api/sandbox", server.key)
    assert status == 403 and closed


def test_large_frames_cross_both_ways_unchanged(server: Any, sandbox: Any) -> None:
    # A 6 MB program in one masked client frame; its output comes back in one frame.
    blob = "ab" * 3_000_000
    code = f"s = {blob!r}\nprint(len(s), s[-4:])"
    url = f"ws://127.0.0.1:{server.port}/toolbox/{sandbox.id}/process/interpreter/execute"
    out = ""
    headers = {"Authorization": f"Bearer {server.key}"}
    with connect(url, additional_headers=headers, max_size=None, open_timeout=20) as ws:
        ws.send(json.dumps({"code": code}))
        try:
            while True:
                frame = json.loads(ws.recv(timeout=60))
                if frame.get("type") == "stdout":
                    out += frame["text"]
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1000
    assert out.strip() == "6000000 abab"


def test_a_slow_reader_holds_back_the_stream_and_loses_nothing(
    server: Any, api: httpx.Client, sandbox: Any, session: str
) -> None:
    """Backpressure through the relay: a client that stops reading, then reads, gets it all."""
    base = f"/toolbox/{sandbox.id}/process/session/{session}"
    nbytes = 8 * 1024 * 1024
    r = api.post(f"{base}/exec", json={"command": f"head -c {nbytes} /dev/zero", "runAsync": True})
    cmd = r.json()["cmdId"]
    url = f"ws://127.0.0.1:{server.port}{base}/command/{cmd}/logs?follow=true"
    headers = {"Authorization": f"Bearer {server.key}"}
    total = 0
    with connect(url, additional_headers=headers, max_size=None, open_timeout=20) as ws:
        # Wait until the command is done before reading a byte: everything in between
        # sits in socket and relay buffers, which must hold back, not drop.
        wait_for(
            lambda: api.get(f"{base}/command/{cmd}").json().get("exitCode") is not None,
            60,
            "the command to finish",
        )
        try:
            while True:
                data = ws.recv(timeout=60)
                assert isinstance(data, bytes)
                total += len(data) - 3 * (data.count(b"\x01\x01\x01") + data.count(b"\x02\x02\x02"))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1000
    assert total == nbytes


def test_the_front_works_on_plain_asyncio_and_h11(tmp_path: Any) -> None:
    """uvloop and httptools are an optional extra: without them uvicorn uses asyncio and
    h11, whose transports and upgrade hand-off the front must handle as well."""
    from tests.serverproc import ServerProcess

    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['uvloop'] = None\nsys.modules['httptools'] = None\n"
    )
    env = {"PYTHONPATH": str(blocker), "COVE_WARM_POOL": "0"}
    plain = ServerProcess(tmp_path / "data", ["plain-key"], env=env).start(timeout=60)
    try:
        assert plain.proc is not None
        with open(f"/proc/{plain.proc.pid}/maps") as f:
            maps = f.read()
        assert "uvloop" not in maps and "httptools" not in maps  # really the plain stack
        headers = {"Authorization": "Bearer plain-key"}
        with httpx.Client(base_url=plain.url, headers=headers, timeout=60) as client:
            sid = client.post("/api/sandbox", json={}).json()["id"]
            url = f"ws://127.0.0.1:{plain.port}/toolbox/{sid}/process/interpreter/execute"
            with connect(url, additional_headers=headers, open_timeout=20) as ws:
                ws.send(json.dumps({"code": "print(6 * 7)"}))
                out = ""
                try:
                    while True:
                        frame = json.loads(ws.recv(timeout=30))
                        out += frame.get("text", "") if frame.get("type") == "stdout" else ""
                except ConnectionClosed:
                    pass
            assert out.strip() == "42"
            status, _, _, closed = _upgrade(plain, f"/toolbox/{sid}/process/nope", "plain-key")
            assert status == 404 and closed
    finally:
        plain.delete_all_sandboxes()
        plain.stop()


@pytest.mark.parametrize("fragmented", [False, True], ids=["one frame", "fragments"])
def test_a_message_over_16_mib_is_refused_with_1009(
    server: Any, sandbox: Any, fragmented: bool
) -> None:
    """Client frames reach the agent verbatim: it bounds whole messages itself."""
    url = f"ws://127.0.0.1:{server.port}/toolbox/{sandbox.id}/process/interpreter/execute"
    headers = {"Authorization": f"Bearer {server.key}"}
    chunk = "x" * (9 * 1024 * 1024)
    with connect(url, additional_headers=headers, max_size=None, open_timeout=20) as ws:
        try:
            ws.send([chunk, chunk] if fragmented else chunk + chunk)
            while True:
                ws.recv(timeout=30)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1009
