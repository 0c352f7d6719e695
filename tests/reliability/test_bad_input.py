"""Bad input gets a clear 4xx (or is handled) and the server stays well.

Malformed JSON, wrong types, oversized bodies, path tricks in ids and cwd,
invalid UTF-8 and lone surrogates, NUL bytes, huge env maps and absurd
numbers, sent raw to a real server and through its toolbox proxy.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerProcess

MiB = 1 << 20


def _envelope(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A clear error: one of `statuses`, Daytona's envelope, a message that says something."""
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    body: dict[str, Any] = r.json()
    assert body["statusCode"] == r.status_code and body["message"], body
    return body


@pytest.fixture(autouse=True)
def server_stays_well(server: ServerProcess, api: httpx.Client) -> Iterator[None]:
    """After each test: the server is up, answers, and logged no unhandled error."""
    seen = len(server.output)
    yield
    assert api.get("/health").status_code == 200
    assert server.proc is not None and server.proc.poll() is None
    new = server.output[seen:]
    assert not any("Traceback" in line for line in new), "".join(new[-40:])


@pytest.fixture(scope="module")
def sid(sandbox: Any) -> str:
    return str(sandbox.id)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"{'a': 1}", b"nul", b'{"command": "x"', b"\xff\xfe{}", b'{"a": 1}{"b": 2}', b"[1,"],
)
def test_malformed_json_is_a_400(api: httpx.Client, sid: str, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    for path in (
        "/api/sandbox",
        f"/toolbox/{sid}/process/execute",
        f"/toolbox/{sid}/process/code-run",
    ):
        body = _envelope(api.post(path, content=raw, headers=headers), 400)
        assert "JSON" in body["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/sandbox", [], "body"),
        ("/api/sandbox", "text", "body"),
        ("/api/sandbox", 12, "body"),
        ("/api/sandbox", {"cpu": "2"}, "cpu"),
        ("/api/sandbox", {"cpu": 1.5}, "cpu"),
        ("/api/sandbox", {"memory": True}, "memory"),
        ("/api/sandbox", {"env": []}, "env"),
        ("/api/sandbox", {"env": {"A": 1}}, "env.A"),
        ("/api/sandbox", {"labels": "x"}, "labels"),
        ("/api/sandbox", {"name": 7}, "name"),
        ("/api/sandbox", {"entrypoint": "sleep 1"}, "entrypoint"),
        ("/api/sandbox", {"cpu": 10**30}, "cpu"),
        ("/api/sandbox", {"memory": -1}, "memory"),
        ("/api/sandbox", {"labels": {"code-toolbox-language": "cobol"}}, "code-toolbox-language"),
        ("execute", [], "body"),
        ("execute", {}, "command"),
        ("execute", {"command": None}, "command"),
        ("execute", {"command": 5}, "command"),
        ("execute", {"command": ["ls"]}, "command"),
        ("execute", {"command": "true", "envs": "A=1"}, "envs"),
        ("execute", {"command": "true", "envs": {"A": None}}, "envs.A"),
        ("execute", {"command": "true", "timeout": "5"}, "timeout"),
        ("execute", {"command": "true", "timeout": -1}, "timeout"),
        ("execute", {"command": "true", "cwd": 3}, "cwd"),
        ("execute", {"command": "true", "maxOutputBytes": "big"}, "maxOutputBytes"),
        ("code-run", {"code": 1}, "code"),
        ("code-run", {"code": "1", "language": "cobol"}, "language"),
        ("code-run", {"code": "1", "argv": "x"}, "argv"),
        ("code-run", {"code": "1", "argv": [1]}, "argv[0]"),
    ],
)
def test_wrong_types_name_the_field(
    api: httpx.Client, sid: str, path: str, body: Any, field: str
) -> None:
    if not path.startswith("/"):
        path = f"/toolbox/{sid}/process/{path}"
    err = _envelope(api.post(path, json=body), 400)
    assert field in err["message"], err


def _raw_request(server: ServerProcess, head: str, body_sizes: Iterator[bytes]) -> tuple[int, int]:
    """Send a request head then body chunks until the server answers; (status, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head.encode())
        s.settimeout(0)  # non-blocking: look for an early answer between chunks
        response = b""
        for chunk in body_sizes:
            with contextlib.suppress(BlockingIOError):
                response += s.recv(65536)
            if response:
                break
            try:
                s.settimeout(30)
                s.sendall(chunk)
                s.settimeout(0)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        s.settimeout(30)
        while b"\r\n" not in response:
            more = s.recv(65536)
            if not more:
                break
            response += more
    return int(response.split(b" ", 2)[1]), sent


def _chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize("where", ["api", "toolbox"])
def test_64_mib_body_with_content_length_is_refused_before_it_is_sent(
    server: ServerProcess, sid: str, where: str
) -> None:
    path = "/api/sandbox" if where == "api" else f"/toolbox/{sid}/process/execute"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {64 * MiB}\r\n\r\n"
    )
    status, sent = _raw_request(server, head, _chunks(64 * MiB))
    assert status == 413
    assert sent < 64 * MiB  # answered before the body was sent: nothing was buffered


@pytest.mark.parametrize("where", ["api", "toolbox"])
def test_64_mib_chunked_body_is_cut_off_at_the_limit(
    server: ServerProcess, sid: str, where: str
) -> None:
    path = "/api/sandbox" if where == "api" else f"/toolbox/{sid}/process/execute"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.key}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )

    def chunked() -> Iterator[bytes]:
        for data in _chunks(64 * MiB):
            yield f"{len(data):x}\r\n".encode() + data + b"\r\n"
        yield b"0\r\n\r\n"

    status, sent = _raw_request(server, head, chunked())
    assert status == 413
    assert sent < 40 * MiB  # refused near the 16 MiB limit, not after the whole body


@pytest.mark.parametrize(
    "ref",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "a%00b",
        "%00",
        "x" * 5000,
        "%F0%9F%92%A5",
        "%ff%fe",
        "'; DROP TABLE sandboxes; --",
        "*",
        "%25",
    ],
)
def test_path_tricks_in_sandbox_ids_are_not_found(api: httpx.Client, ref: str) -> None:
    for method, path in [
        ("GET", f"/api/sandbox/{ref}"),
        ("DELETE", f"/api/sandbox/{ref}"),
        ("POST", f"/api/sandbox/{ref}/start"),
        ("GET", f"/toolbox/{ref}/version"),
        ("POST", f"/toolbox/{ref}/process/execute"),
    ]:
        r = api.request(method, path, json={"command": "true"})
        _envelope(r, 400, 404)
    assert api.get("/api/sandbox").status_code == 200  # the table is still there


def test_path_tricks_after_the_sandbox_id_stay_in_the_agent(
    server: ServerProcess, api: httpx.Client, sid: str
) -> None:
    for rest in ("../../api/sandbox", "%2e%2e/%2e%2e/api/sandbox", "..%2F..%2Fhealth", "//etc"):
        status, body = _raw_get(server, f"/toolbox/{sid}/{rest}")
        # The dots stay in the path the agent gets: this sandbox's agent answers
        # that it has no such route; the control plane's /api is never reached.
        assert status == 404, (rest, status, body)
        answer = json.loads(body)
        assert answer["source"] == "DAYTONA_DAEMON", answer
        assert answer["message"].startswith("no such endpoint: GET /"), answer
        assert b'"items"' not in body


@pytest.mark.parametrize(
    "session", ["%00", "%0D%0AX-Injected:%201", "a%2Fb", "%3Fq=1", "%09", "%FF", "%C3%A9", "%25"]
)
def test_encoded_tricks_in_toolbox_path_parameters_are_not_found(
    server: ServerProcess, sid: str, session: str
) -> None:
    """The proxy forwards ids as the client encoded them: no 500, no header lines."""
    crlf = session.startswith("%0D")
    # A decoded CR LF never reaches the agent (the control plane has no such route).
    status, head, body = _raw_get_head(server, f"/toolbox/{sid}/process/session/{session}")
    assert (status, _source(body)) == (404, "DAYTONA_API" if crlf else "DAYTONA_DAEMON"), body
    if not crlf:
        assert (
            "session" in json.loads(body)["message"] and "not found" in json.loads(body)["message"]
        )
    assert b"X-Injected" not in head
    # The interpreter's context route has no GET: the agent says so about this very path.
    path = f"/toolbox/{sid}/process/interpreter/context/{session}"
    status, head, body = _raw_get_head(server, path)
    assert (status, _source(body)) == (
        404 if crlf else 400,
        "DAYTONA_API" if crlf else "DAYTONA_DAEMON",
    )
    assert b"X-Injected" not in head


def _source(body: bytes) -> str:
    return str(json.loads(body)["source"])


def _raw_get_head(server: ServerProcess, target: str) -> tuple[int, bytes, bytes]:
    """GET a target exactly as written (httpx would normalise the dots away)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.key}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def _raw_get(server: ServerProcess, target: str) -> tuple[int, bytes]:
    status, _, body = _raw_get_head(server, target)
    return status, body


@pytest.mark.parametrize(
    ("cwd", "landed"),
    [
        # Dots resolve inside the sandbox's own filesystem (its /etc, its /).
        ("../../../etc", "/etc\n"),
        ("/", "/\n"),
        ("a/../../..", "/\n"),
        # The rest cannot be a working directory: a 400 that says why.
        ("/proc/1/root", "Permission denied"),
        ("/etc/passwd", "is not a directory"),
        ("x" * 5000, "longer than a path can be"),
        ("a/" * 3000, "longer than a path can be"),
        ("/dev/null", "is not a directory"),
        ("/proc/self/fd/0", "is not a directory"),
    ],
)
def test_cwd_tricks_are_handled_inside_the_sandbox(
    api: httpx.Client, sid: str, cwd: str, landed: str
) -> None:
    r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "pwd", "cwd": cwd})
    if landed.startswith("/"):
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == landed
    else:
        assert landed in _envelope(r, 400)["message"]


def test_nul_bytes_are_refused_where_the_os_cannot_take_them(api: httpx.Client, sid: str) -> None:
    url = f"/toolbox/{sid}/process/execute"
    for body in [
        {"command": "echo a\0b"},
        {"command": "true", "cwd": "a\0b"},
        {"command": "true", "envs": {"A\0B": "1"}},
        {"command": "true", "envs": {"A": "1\x002"}},
    ]:
        _envelope(api.post(url, json=body), 400)
    r = api.post(f"/toolbox/{sid}/process/code-run", json={"code": "print('a\\0b'.split())"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("execute", {"command": "echo '\ud800'"}),  # a lone surrogate: valid JSON, not text
        ("execute", {"command": "echo '\udcff'"}),
        ("execute", {"command": "true", "envs": {"A": "\ud800"}}),
        ("execute", {"command": "true", "envs": {"\udfff": "1"}}),
        ("execute", {"command": "pwd", "cwd": "\ud800"}),
        ("code-run", {"code": "print('\ud800')"}),
        ("/api/sandbox", {"env": {"A": "\ud800"}}),
        ("/api/sandbox", {"name": "\udc80"}),
    ],
)
def test_lone_surrogates_are_a_400(
    api: httpx.Client, sid: str, path: str, body: dict[str, Any]
) -> None:
    if not path.startswith("/"):
        path = f"/toolbox/{sid}/process/{path}"
    # json.dumps escapes them (\\ud800), as a client in any language may send.
    raw = json.dumps(body).encode()
    r = api.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert "surrogate" in _envelope(r, 400)["message"]


def test_invalid_utf8_in_the_body_is_a_400(api: httpx.Client, sid: str) -> None:
    raw = b'{"command": "echo \xff\xfe"}'
    r = api.post(
        f"/toolbox/{sid}/process/execute",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    _envelope(r, 400)


def test_invalid_utf8_in_output_comes_back_replaced(api: httpx.Client, sid: str) -> None:
    r = api.post(
        f"/toolbox/{sid}/process/execute",
        json={"command": "printf 'a\\377\\376b\\300\\n'; printf '\\355\\240\\200' >&2"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["stdout"].startswith("a") and "b" in body["stdout"]
    assert "\ufffd" in body["stdout"] and "\ufffd" in body["stderr"]
    r = api.post(
        f"/toolbox/{sid}/process/code-run",
        json={"code": "import sys; sys.stdout.buffer.write(bytes(range(256)))"},
    )
    assert r.status_code == 200 and r.json()["exitCode"] == 0


@pytest.mark.timeout(300)
def test_huge_env_maps_are_a_400(api: httpx.Client, sid: str) -> None:
    url = f"/toolbox/{sid}/process/execute"
    too_long = "Argument list too long"
    # ~4 MiB of environment: past what execve takes (E2BIG), under the body limit.
    envs = {f"V{i}": "x" * 200 for i in range(20000)}
    assert (
        too_long in _envelope(api.post(url, json={"command": "true", "envs": envs}), 400)["message"]
    )
    # One value past the kernel's per-string limit (128 KiB).
    big = {"BIG": "x" * (200 * 1024)}
    assert (
        too_long in _envelope(api.post(url, json={"command": "true", "envs": big}), 400)["message"]
    )
    # Past the body limit: 413 from the proxy.
    envs = {f"V{i}": "x" * 1000 for i in range(20000)}
    _envelope(api.post(url, json={"command": "true", "envs": envs}), 413)
    # On create: refused, rather than a sandbox in which no command can start.
    before = len(api.get("/api/sandbox").json()["items"])
    for env in ({f"V{i}": "x" * 200 for i in range(20000)}, big):
        err = _envelope(api.post("/api/sandbox", json={"env": env}), 400)
        assert "env" in err["message"], err
    assert len(api.get("/api/sandbox").json()["items"]) == before
    # Just under the limits is a sandbox that runs commands with it.
    fits = {f"V{i}": "x" * 200 for i in range(4000)}
    r = api.post("/api/sandbox", json={"env": fits})
    assert r.status_code == 200 and r.json()["state"] == "started", r.text[:300]
    try:
        out = api.post(
            f"/toolbox/{r.json()['id']}/process/execute", json={"command": "echo $V3999"}
        )
        assert out.json()["stdout"] == "x" * 200 + "\n"
    finally:
        api.delete(f"/api/sandbox/{r.json()['id']}")
    assert api.post(url, json={"command": "echo ok"}).json()["result"] == "ok\n"


@pytest.mark.parametrize(
    ("extra", "status", "stdout", "truncated"),
    [
        ({"timeout": 1e308}, 200, "hi\n", False),  # no limit in practice
        ({"maxOutputBytes": -1}, 200, "", True),  # read as no output kept
        ({"maxOutputBytes": 0}, 200, "", True),
        ({"maxOutputBytes": 10**20}, 200, "hi\n", False),  # the server's cap applies
        ({"maxOutputBytes": 10**400}, 200, "hi\n", False),
    ],
)
def test_absurd_numbers_are_handled(
    api: httpx.Client,
    sid: str,
    extra: dict[str, Any],
    status: int,
    stdout: str,
    truncated: bool,
) -> None:
    r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "echo hi", **extra})
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert (body["stdout"], body["truncated"], body["timedOut"]) == (
        stdout,
        truncated,
        status == 408,
    )


def test_a_timeout_of_almost_nothing_times_out(api: httpx.Client, sid: str) -> None:
    r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "sleep 30", "timeout": 1e-300})
    assert r.status_code == 408, r.text[:300]
    assert r.json()["timedOut"] is True and r.json()["exitCode"] == 137


def test_an_integer_timeout_past_a_float_is_a_400(api: httpx.Client, sid: str) -> None:
    r = api.post(f"/toolbox/{sid}/process/execute", json={"command": "echo hi", "timeout": 10**400})
    assert "must be a finite number" in _envelope(r, 400)["message"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_refused(api: httpx.Client, sid: str, literal: bytes) -> None:
    raw = b'{"command": "echo hi", "timeout": ' + literal + b"}"
    r = api.post(
        f"/toolbox/{sid}/process/execute", content=raw, headers={"Content-Type": "application/json"}
    )
    _envelope(r, 400)
    raw = b'{"cpu": ' + literal + b"}"
    r = api.post("/api/sandbox", content=raw, headers={"Content-Type": "application/json"})
    _envelope(r, 400)


def test_deeply_nested_json_is_a_400(api: httpx.Client, sid: str) -> None:
    raw = b'{"command": "true", "envs": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    for path in ("/api/sandbox", f"/toolbox/{sid}/process/execute"):
        r = api.post(path, content=raw, headers={"Content-Type": "application/json"})
        _envelope(r, 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "x" * 300}, "name"),
        ({"name": "a\0b"}, "name"),
        ({"env": {"A": "x\0y"}}, "env.A"),
        ({"env": {"A\0": "x"}}, "env"),
        ({"entrypoint": ["a\0b"]}, "entrypoint[0]"),
    ],
)
def test_create_with_odd_names_env_or_entrypoint_is_a_400(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    before = len(api.get("/api/sandbox").json()["items"])
    assert f"'{field}'" in _envelope(api.post("/api/sandbox", json=body), 400)["message"]
    assert len(api.get("/api/sandbox").json()["items"]) == before


def test_create_with_odd_but_valid_fields_makes_a_working_sandbox(api: httpx.Client) -> None:
    for body in [{"name": ""}, {"labels": {"": "x"}}, {"entrypoint": [""]}]:
        r = api.post("/api/sandbox", json=body)
        assert r.status_code == 200, (body, r.text[:300])
        made = r.json()
        try:
            assert made["state"] == "started", made
            out = api.post(f"/toolbox/{made['id']}/process/execute", json={"command": "echo ok"})
            assert out.json()["stdout"] == "ok\n", (body, out.text)
            if "name" in body:  # an empty name is no name: the id stands in
                assert made["name"] == made["id"]
            if "labels" in body:
                assert made["labels"][""] == "x"
        finally:
            api.delete(f"/api/sandbox/{made['id']}")


@pytest.mark.parametrize("labels", ["[" * 3000, '{"a":' * 3000, "NaN", "[]", "{", '"x"'])
def test_odd_label_filters_are_a_400(api: httpx.Client, labels: str) -> None:
    _envelope(api.get("/api/sandbox", params={"labels": labels}), 400)


def _ws_close(server: ServerProcess, api: httpx.Client, path: str, frames: list[Any]) -> int:
    """Open a toolbox WebSocket, send `frames`, and return the close code (or the HTTP
    status of a refused upgrade)."""
    from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError, connect_ws

    try:
        ws: Any
        with connect_ws(f"{server.url}{path}", api) as ws:
            for frame in frames:
                if isinstance(frame, bytes):
                    ws.send_bytes(frame)
                else:
                    ws.send_text(frame)
            while True:
                ws.receive(timeout=20)
    except WebSocketDisconnect as closed:
        return int(closed.code)
    except WebSocketUpgradeError as refused:
        return refused.response.status_code


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        b"\xff\xfe\xfd",
        "[1, 2]",
        "[" * 5000,
        '{"code": 5}',
        '{"code": "1", "timeout": "x"}',
        '{"code": "1", "timeout": NaN}',
        '{"code": "1", "timeout": -1}',
        '{"code": "1", "contextId": "no-such-context"}',
        '{"code": "1", "envs": {"A\\u0000": "1"}}',
        '{"code": "\\ud800"}',
    ],
)
def test_bad_interpreter_frames_close_with_a_4xxx_code(
    server: ServerProcess, api: httpx.Client, sid: str, frame: str | bytes
) -> None:
    code = _ws_close(server, api, f"/toolbox/{sid}/process/interpreter/execute", [frame])
    assert code == (4404 if "no-such-context" in str(frame) else 4400), code
    assert api.get(f"/toolbox/{sid}/version").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "id=p1&cols=abc&rows=10",
        "id=p2&cols=-1&rows=10",
        "id=p3&cols=100000000&rows=100000000",
        "id=p4&cwd=%00",
        "id=%00",
        "",
        "id=p5&cols=80&rows=24&cwd=" + "x" * 5000,
    ],
)
def test_bad_pty_queries_are_refused(
    server: ServerProcess, api: httpx.Client, sid: str, query: str
) -> None:
    # Refused at the upgrade, before any PTY exists.
    code = _ws_close(server, api, f"/toolbox/{sid}/process/pty/create-connect?{query}", [])
    assert code == 400, code
    assert api.get(f"/toolbox/{sid}/version").status_code == 200


def test_a_caller_cannot_raise_the_output_cap(api: httpx.Client, sid: str) -> None:
    """Every answer passes through the control plane's memory: 30 MiB of output with
    maxOutputBytes=10**12 still comes back cut at the configured 10 MiB."""
    r = api.post(
        f"/toolbox/{sid}/process/execute",
        json={"command": "head -c 30M /dev/zero | tr '\\0' x", "maxOutputBytes": 10**12},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["truncated"] is True
    assert len(body["stdout"]) <= 10 * MiB


# '³' passes `str.isdigit` but not `int`: each of these answered 500 once the
# fuzzer sent it as a port (checks now use `cove.wire.numbers.is_number`).
@pytest.mark.parametrize(
    "path",
    [
        "/api/sandbox/{sid}/ports/%C2%B3/signed-preview-url",
        "/api/sandbox/{sid}/ports/%C2%B3/preview-url",
        "/toolbox/{sid}/port/%C2%B3/in-use",
    ],
)
def test_digits_that_are_not_ascii_are_a_400(api: httpx.Client, sid: str, path: str) -> None:
    body = _envelope(api.get(path.format(sid=sid)), 400)
    assert "port" in body["message"], body


def test_digits_that_are_not_ascii_elsewhere_are_ignored(api: httpx.Client, sid: str) -> None:
    listed = api.get("/api/snapshots", params={"page": "³", "limit": "²"})
    assert listed.status_code == 200 and listed.json()["page"] == 1, listed.text[:300]
    made = api.post(
        f"/toolbox/{sid}/process/execute", json={"command": "printf 0123456789 > /tmp/range"}
    )
    assert made.status_code == 200 and made.json()["exitCode"] == 0, made.text[:300]
    for asked in (b"bytes=\xb3-", b"bytes=1-\xb3"):  # read as latin-1: '³'
        r = api.get(
            f"/toolbox/{sid}/files/download",
            params={"path": "/tmp/range"},
            headers={"Range": asked},  # type: ignore[dict-item]
        )
        assert (r.status_code, r.content) == (200, b"0123456789"), (asked, r.status_code)
