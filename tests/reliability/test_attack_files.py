"""Attacks on the file routes by the sandbox's own code (issue 18, item 3).

User code controls every name under the workspace, and may change a name
between the agent's check and its use: FIFOs that block a reader, device
files, names of 4 KiB, NUL bytes. Whatever it plants, a file call answers
(4xx, or a cut transfer) within a deadline and the agent keeps serving
every other call. Links and `..` reaching the host are in
tests/e2e/test_files_edges.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerProcess

BIG = 64 * 1024 * 1024  # more than the sockets between agent, server and client hold


@pytest.fixture(scope="module")
def sb(daytona: Any) -> Iterator[Any]:
    """A sandbox of this module's own: an attack that wedged its agent must not take the
    shared one down with it."""
    box = daytona.create()
    try:
        yield box
    finally:
        daytona.delete(box)


@pytest.fixture
def raw(server: ServerProcess, sb: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=f"{server.url}/toolbox/{sb.id}", headers=headers) as client:
        yield client


def sh(client: httpx.Client, command: str, timeout: float = 20) -> str:
    r = client.post(
        "/process/execute", json={"command": command, "timeout": timeout}, timeout=timeout + 10
    )
    assert r.status_code == 200, r.text
    assert r.json()["exitCode"] == 0, r.json()
    return str(r.json()["result"])


def agent_answers(client: httpx.Client) -> None:
    """The agent still serves: a command round trip within a few seconds."""
    assert sh(client, "echo alive", timeout=10) == "alive\n"


@pytest.mark.timeout(300)  # a loaded shared host: many round trips
def test_fifo_swapped_in_during_a_bulk_download_does_not_hang_the_agent(
    raw: httpx.Client,
) -> None:
    # The paths are checked when the request arrives; the second is opened only
    # once the first has been sent. User code swaps it for a FIFO in between.
    sh(raw, f"head -c {BIG} /dev/zero > big.bin && echo small > swapped")
    body = {"paths": ["big.bin", "swapped"]}
    with raw.stream("POST", "/files/bulk-download", json=body, timeout=30) as r:
        assert r.status_code == 200
        chunks = r.iter_bytes()
        next(chunks)  # the answer has begun: both paths were planned as regular files
        sh(raw, "rm swapped && mkfifo swapped")
        with pytest.raises(httpx.HTTPError):  # the promised bytes cannot come: cut short
            for _ in chunks:
                pass
    agent_answers(raw)


def test_fifo_and_devices_are_refused_not_read(raw: httpx.Client) -> None:
    sh(raw, "rm -f pipe && mkfifo pipe && ln -sfn /dev/zero zero-link && ln -sfn pipe pipe-link")
    for path in ("pipe", "pipe-link", "/dev/zero", "zero-link", "/dev/urandom", "/dev/null"):
        r = raw.get("/files/download", params={"path": path}, timeout=20)
        assert r.status_code == 400 and "not a regular file" in r.text, (path, r.text)
    r = raw.post("/files/bulk-download", json={"paths": ["pipe", "/dev/zero"]}, timeout=20)
    assert r.status_code == 200 and r.text.count("not a regular file") == 2
    agent_answers(raw)


def test_fifo_in_a_searched_tree_is_skipped(raw: httpx.Client) -> None:
    sh(raw, "rm -rf tree && mkdir tree && echo needle > tree/a.txt && mkfifo tree/b.pipe")
    r = raw.get("/files/find", params={"path": "tree", "pattern": "needle"}, timeout=20)
    workdir = sh(raw, "pwd").strip()
    assert r.status_code == 200 and [m["file"] for m in r.json()] == [f"{workdir}/tree/a.txt"]
    body = {"files": ["tree/b.pipe", "/dev/zero"], "pattern": "x", "newValue": "y"}
    r = raw.post("/files/replace", json=body, timeout=20)
    assert r.status_code == 200
    assert [x["success"] for x in r.json()] == [False, False], r.json()
    agent_answers(raw)


@pytest.mark.timeout(300)  # a loaded shared host: many round trips
def test_fifo_raced_against_find_and_replace_does_not_hold_the_agent(
    raw: httpx.Client,
) -> None:
    # The walk checks each name, then opens it: user code flips the name between a
    # regular file and a FIFO as fast as it can. Every call must still come back.
    flip = (
        "cd race && while :; do echo needle > f.tmp && mv -f f.tmp target;"
        " mkfifo p.tmp && mv -f p.tmp target; done"
    )
    sh(raw, "rm -rf race && mkdir race")
    raw.post("/process/session", json={"sessionId": "flipper"}, timeout=20)
    r = raw.post(
        "/process/session/flipper/exec", json={"command": flip, "runAsync": True}, timeout=20
    )
    assert r.status_code in (200, 202), r.text
    try:
        errors: list[str] = []

        def hammer(route: str) -> None:
            for _ in range(40):
                try:
                    if route == "find":
                        raw.get("/files/find", params={"path": "race", "pattern": "n"}, timeout=15)
                    elif route == "replace":
                        body = {"files": ["race/target"], "pattern": "needle", "newValue": "x"}
                        raw.post("/files/replace", json=body, timeout=15)
                    else:
                        raw.get("/files/download", params={"path": "race/target"}, timeout=15)
                except httpx.HTTPError as exc:
                    errors.append(f"{route}: {type(exc).__name__}")

        threads = [threading.Thread(target=hammer, args=(r,)) for r in ("find", "replace", "get")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        agent_answers(raw)
    finally:
        raw.delete("/process/session/flipper", timeout=20)


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("a\0b", 400, "NUL"),
        ("x" * 4096, 400, "longer than a path"),
        ("d/" * 2100, 400, "longer than a path"),
        ("n" * 300, 400, "File name too long"),
    ],
)
def test_odd_names_are_a_4xx_naming_the_problem(
    raw: httpx.Client, path: str, status: int, words: str
) -> None:
    for call in (
        lambda: raw.get("/files/download", params={"path": path}, timeout=20),
        lambda: raw.get("/files/info", params={"path": path}, timeout=20),
        lambda: raw.post("/files/folder", params={"path": path, "mode": "755"}, timeout=20),
    ):
        r = call()
        assert r.status_code in (status, 404), r.text
        if r.status_code == status:
            assert words in r.text, r.text
    files = {"files[0].path": (None, path), "files[0].file": ("f", b"x")}
    r = raw.post("/files/bulk-upload", files=files, timeout=20)
    assert r.status_code == status and words in r.text, r.text
    agent_answers(raw)


def test_an_upload_refused_early_still_gets_its_whole_answer(raw: httpx.Client) -> None:
    """The agent refuses at the first bad part, with most of the body unread: it reads
    and drops that rest, since closing on unread input resets the connection and the
    answer already sent could be lost (seen once as a head without its body)."""
    for _ in range(20):
        files = {
            "files[0].path": (None, "x" * 4096),
            "files[0].file": ("f", b"y" * (512 * 1024)),
        }
        r = raw.post("/files/bulk-upload", files=files, timeout=20)
        assert r.status_code == 400 and "longer than a path" in r.text, r.text
    agent_answers(raw)
