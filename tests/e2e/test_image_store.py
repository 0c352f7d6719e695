"""Cove's own image endpoints: a build that sends its context straight to the server
(COPY from it), the store's list, and pruning that never evicts an image in use."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(900)  # the first image of a fresh machine builds its base

DOCKERFILE = """\
FROM python:3.11-slim
COPY app/ /opt/app/
COPY hello.txt /etc/hello.txt
"""


def _context(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(api: httpx.Client, tar: bytes, tag: str) -> list[dict[str, Any]]:
    with api.stream("POST", "/api/images/build", params={"tag": tag}, content=tar) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line) for line in r.iter_lines() if line]


def test_build_with_a_context_list_and_prune(api: httpx.Client, daytona: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    tar = _context(
        {"Dockerfile": DOCKERFILE, "app/main.py": "print('ctx')\n", "hello.txt": "hi from ctx\n"}
    )
    events = _build(api, tar, "ctx-test:1")
    assert any("COPY app/ /opt/app/" in e.get("log", "") for e in events), events
    assert "image" in events[-1], events
    image = events[-1]["image"]
    assert image["tag"] == "ctx-test:1"

    sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot="ctx-test:1"))
    try:
        r = sb.process.exec("python3 /opt/app/main.py; cat /etc/hello.txt")
        assert r.result == "ctx\nhi from ctx\n", r.result
        listed = {i["id"]: i for i in api.get("/api/images").json()["items"]}
        assert listed[image["id"]]["inUse"] and "ctx-test:1" in listed[image["id"]]["tags"]
        # Everything unused goes; the image this sandbox runs on stays.
        api.post("/api/images/prune", params={"all": "true"}).raise_for_status()
        assert image["id"] in {i["id"] for i in api.get("/api/images").json()["items"]}
        assert sb.process.exec("cat /etc/hello.txt").result == "hi from ctx\n"
    finally:
        daytona.delete(sb)
    pruned = api.post("/api/images/prune", params={"all": "true"}).json()
    assert image["id"] in pruned["removedImages"] and pruned["freedBytes"] > 0
    # An unchanged context builds again from cached layers once they are back.
    events = _build(api, tar, "ctx-test:1")
    assert events[-1]["image"]["id"] == image["id"]


def test_a_build_error_ends_the_stream_with_it(api: httpx.Client) -> None:
    tar = _context({"Dockerfile": "FROM python:3.11-slim\nCOPY missing.txt /x\n"})
    events = _build(api, tar, "ctx-bad:1")
    assert "line 2 (COPY) failed" in events[-1]["error"]["message"], events
    r = api.post("/api/images/build", content=_context({"Other": "FROM x\n"}))
    assert r.status_code == 400 and "no Dockerfile" in r.json()["message"]
