"""The Cove SDK's snapshot and image calls, sync and async, against a real server.

`client.snapshots.create/list/get/activate/delete` with the build log
followed, `create(image=...)` from a reference or an `Image`-like builder,
and `sandbox.create_snapshot` on an image and on the default root. Images
are built on the Debian bookworm base (`python:3.11-slim`) that the other
image tests share (cached across sessions).
"""

from __future__ import annotations

import asyncio

import pytest

from cove.sdk import AsyncCove, Cove, SandboxError
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(900)  # the first image of a fresh machine builds its base


class Builder:
    """Anything with `dockerfile()` is taken as an image builder (the official SDK's `Image`)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def dockerfile(self) -> str:
        return self.text


def test_snapshot_lifecycle_with_its_log(cove: Cove) -> None:
    logs: list[str] = []
    snap = cove.snapshots.create(
        "sdk-snap:1",
        dockerfile="FROM python:3.11-slim\nRUN echo from-sdk-snapshot > /etc/sdk-snap\n",
        on_logs=logs.append,
    )
    try:
        assert snap.name == "sdk-snap:1" and snap.state == "active", snap
        text = "\n".join(logs)
        assert "RUN echo from-sdk-snapshot > /etc/sdk-snap" in text, text[-2000:]
        assert snap.id in [s.id for s in cove.snapshots.list()]
        got = cove.snapshots.get("sdk-snap:1")
        assert got.id == snap.id and got.size and got.size > 0
        assert cove.snapshots.activate(snap).state == "active"
        sb = cove.create(snapshot="sdk-snap:1")
        try:
            assert sb.process.exec("cat /etc/sdk-snap").result.strip() == "from-sdk-snapshot"
        finally:
            cove.delete(sb)
    finally:
        cove.snapshots.delete(snap)
    with pytest.raises(Exception, match="sdk-snap:1"):
        cove.snapshots.get("sdk-snap:1")


def test_a_failing_snapshot_build_raises_its_reason(cove: Cove) -> None:
    logs: list[str] = []
    with pytest.raises(SandboxError, match="exit status 3"):
        cove.snapshots.create(
            "sdk-snap-bad", Builder("FROM python:3.11-slim\nRUN exit 3\n"), on_logs=logs.append
        )
    assert any("exit status 3" in line for line in logs), logs
    cove.snapshots.delete("sdk-snap-bad")


def test_create_from_an_image_builder_streams_its_build(cove: Cove) -> None:
    logs: list[str] = []
    marker = "built-by-cove-sdk"
    sb = cove.create(
        image=Builder(f"FROM python:3.11-slim\nRUN echo {marker} > /etc/sdk-image\n"),
        on_snapshot_create_logs=logs.append,
        timeout=900,
    )
    try:
        assert sb.state == "started"
        assert sb.process.exec("cat /etc/sdk-image").result.strip() == marker
        text = "\n".join(logs)
        assert f"RUN echo {marker} > /etc/sdk-image" in text, text[-2000:]
    finally:
        cove.delete(sb)


def test_bad_image_arguments_are_refused_before_any_request(cove: Cove) -> None:
    with pytest.raises(Exception, match="exactly one of"):
        cove.snapshots.create("x", "python:3.11-slim", dockerfile="FROM x\n")
    with pytest.raises(Exception, match="reference or an Image builder"):
        cove.create(image=42)


def test_create_snapshot_on_an_image_and_on_the_default_root(cove: Cove) -> None:
    on_image = cove.create(image="python:3.11-slim", timeout=900)
    try:
        on_image.process.exec("echo root-change > /var/tmp/sdk-root.txt; echo ws > ~/sdk-ws.txt")
        on_image.create_snapshot("sdk-captured-image")
    finally:
        # Behaviour, not speed: beside `make bench` (load ~30) this delete took
        # past the SDK's default 60 s.
        cove.delete(on_image, timeout=300)
    plain = cove.create()
    try:
        plain.process.exec("echo plain-ws > ~/sdk-plain.txt")
        plain.create_snapshot("sdk-captured-plain")
    finally:
        cove.delete(plain)
    try:
        a = cove.create(snapshot="sdk-captured-image")
        b = cove.create(snapshot="sdk-captured-plain")
        r = a.process.exec("cat /var/tmp/sdk-root.txt ~/sdk-ws.txt")
        assert r.result.split() == ["root-change", "ws"], r.result
        assert b.process.exec("cat ~/sdk-plain.txt").result.strip() == "plain-ws"
        assert cove.snapshots.get("sdk-captured-plain").source_sandbox_id == plain.id
    finally:
        for name in ("sdk-captured-image", "sdk-captured-plain"):
            cove.snapshots.delete(name)


def test_async_face_shares_the_calls(server: ServerProcess) -> None:
    async def main() -> tuple[str, str, list[str], bool]:
        async with AsyncCove(api_url=server.api_url, api_key=server.key) as c:
            logs: list[str] = []
            snap = await c.snapshots.create(
                "sdk-async:1",
                dockerfile="FROM python:3.11-slim\nRUN echo async-snap > /etc/async-snap\n",
                on_logs=logs.append,
            )
            listed = snap.id in [s.id for s in await c.snapshots.list()]
            sb = await c.create(snapshot="sdk-async:1")
            out = (await sb.process.exec("cat /etc/async-snap")).result.strip()
            await sb.process.exec("echo async-ws > ~/a.txt")
            await sb.create_snapshot("sdk-async-captured")
            got = await c.snapshots.get("sdk-async-captured")
            await c.delete(sb)
            for name in ("sdk-async:1", "sdk-async-captured"):
                await c.snapshots.delete(name)
            return out, got.source_sandbox_id or "", logs, listed

    out, source, logs, listed = asyncio.run(main())
    assert out == "async-snap" and source and listed
    assert any("RUN echo async-snap" in line for line in logs), logs
