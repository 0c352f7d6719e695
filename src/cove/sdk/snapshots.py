"""Snapshots through the Cove SDK: `client.snapshots.create/list/get/delete/activate`.

A snapshot is a named image that `create(snapshot=NAME)` runs on. It is made
from an image reference (`image="python:3.12-slim"`), a Dockerfile's text
(`dockerfile=...`), or the official SDK's `Image` builder (anything with a
`dockerfile()` method: nothing of that SDK is imported here). Builds that
need a context go through `client.images.build(..., tag=NAME)`, which sends
it straight to the server.

While a snapshot builds, its log is followed and each line handed to
`on_logs`; the call returns once the snapshot is active, or raises with the
build's error. `SnapshotCalls` builds the requests and `LogLines` splits the
streamed log: the sync and async faces only do the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cove.sdk._base import Call, Endpoints, seg
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.wire.errors import BadRequest, SandboxError

BUILDING_STATES = ("building", "pending", "pulling", "snapshotting")
# A build that failed at once still has its log to show.
LOGGED_STATES = (*BUILDING_STATES, "build_failed")


@dataclass
class Snapshot:
    id: str
    name: str
    state: str
    image_name: str | None
    size: float | None  # GiB on disk
    entrypoint: list[str] | None
    cpu: int
    mem: int
    disk: int
    error_reason: str | None
    created_at: str | None
    source_sandbox_id: str | None


def _snapshot(data: Any) -> Snapshot:
    if not isinstance(data, dict) or "id" not in data:
        raise SandboxError(f"unexpected snapshot answer: {data!r}")
    return Snapshot(
        id=str(data["id"]), name=str(data["name"]), state=str(data["state"]),
        image_name=data.get("imageName"), size=data.get("size"),
        entrypoint=data.get("entrypoint"), cpu=int(data.get("cpu") or 0),
        mem=int(data.get("mem") or 0), disk=int(data.get("disk") or 0),
        error_reason=data.get("errorReason"), created_at=data.get("createdAt"),
        source_sandbox_id=data.get("sourceSandboxId"),
    )  # fmt: skip


def _snapshots(data: Any) -> list[Snapshot]:
    return [_snapshot(item) for item in data["items"]]


def dockerfile_of(image: Any) -> str | None:
    """The Dockerfile text of an `Image`-like object (the official SDK's builder), or None."""
    make = getattr(image, "dockerfile", None)
    if callable(make):
        text = make()
        if not isinstance(text, str):
            raise BadRequest("image.dockerfile() did not return the Dockerfile's text")
        return text
    return None


def create_body(
    name: str, image: Any, dockerfile: str | None, entrypoint: list[str] | None,
    cpu: int | None, memory: int | None, disk: int | None,
) -> dict[str, Any]:  # fmt: skip
    """The POST /snapshots body: exactly one of `image` (a reference or builder) or `dockerfile`."""
    if not name:
        raise BadRequest("a snapshot needs a name")
    if (image is None) == (dockerfile is None):
        raise BadRequest("give a snapshot exactly one of image= (a reference) or dockerfile=")
    body: dict[str, Any] = {"name": name}
    text = dockerfile if dockerfile is not None else dockerfile_of(image)
    if text is not None:
        body["buildInfo"] = {"dockerfileContent": text}
    elif isinstance(image, str) and image:
        body["imageName"] = image
    else:
        raise BadRequest(f"image= must be a reference or an Image builder, not {image!r}")
    for key, value in (("entrypoint", entrypoint), ("cpu", cpu), ("memory", memory),
                       ("disk", disk)):  # fmt: skip
        if value is not None:
            body[key] = value
    return body


class LogLines:
    """A streamed log, fed in pieces, out line by line to `on_line` (if any)."""

    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self.on_line = on_line
        self.pending = b""

    def feed(self, piece: bytes) -> None:
        self.pending += piece
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._out(line)

    def close(self) -> None:
        if self.pending:
            self._out(self.pending)
        self.pending = b""

    def _out(self, line: bytes) -> None:
        if self.on_line is not None:
            self.on_line(line.decode(errors="replace").rstrip("\r"))


def finished(snap: Snapshot) -> Snapshot:
    """`snap` if it is usable; a SandboxError with the build's reason if it failed."""
    if snap.state in ("build_failed", "error"):
        raise SandboxError(
            f"snapshot {snap.name!r} failed: {snap.error_reason or 'no reason given'}"
        )
    return snap


class Backoff:
    """Waits between polls of a state (short first): an SDK cannot be woken by the server."""

    def __init__(self, timeout: float | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.delay = 0.05

    def next(self, what: str) -> float:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise SandboxError(f"{what} did not finish in time")
        delay, self.delay = self.delay, min(self.delay * 2, 1.0)
        return delay


class SnapshotCalls:
    def __init__(self, endpoints: Endpoints) -> None:
        self.ep = endpoints

    def create(self, body: dict[str, Any]) -> Call[Snapshot]:
        return Call("POST", self.ep.api("/snapshots"), "create snapshot", _snapshot, body)

    def list(self) -> Call[list[Snapshot]]:
        params = {"limit": "200"}
        return Call("GET", self.ep.api("/snapshots"), "list snapshots", _snapshots, params=params)

    def get(self, ref: str) -> Call[Snapshot]:
        return Call("GET", self.ep.api(f"/snapshots/{seg(ref)}"), "get snapshot", _snapshot)

    def delete(self, ref: str) -> Call[None]:
        url = self.ep.api(f"/snapshots/{seg(ref)}")
        return Call("DELETE", url, "delete snapshot", lambda _: None)

    def activate(self, ref: str) -> Call[Snapshot]:
        url = self.ep.api(f"/snapshots/{seg(ref)}/activate")
        return Call("POST", url, "activate snapshot", _snapshot)

    def logs(self, snapshot_id: str) -> Call[None]:
        url = self.ep.api(f"/snapshots/{seg(snapshot_id)}/build-logs")
        return Call(
            "GET", url, "snapshot build logs", lambda _: None, params={"follow": "true"},
            timeout=None,
        )  # fmt: skip


def _ref(snapshot: Snapshot | str) -> str:
    return snapshot if isinstance(snapshot, str) else snapshot.id


class Snapshots:
    def __init__(self, transport: SyncTransport, calls: SnapshotCalls) -> None:
        self._t, self._calls = transport, calls

    def create(
        self, name: str, image: Any = None, *, dockerfile: str | None = None,
        entrypoint: list[str] | None = None, cpu: int | None = None, memory: int | None = None,
        disk: int | None = None, on_logs: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> Snapshot:  # fmt: skip
        """Build snapshot `name` from `image` (a reference or an `Image`) or `dockerfile` text."""
        body = create_body(name, image, dockerfile, entrypoint, cpu, memory, disk)
        snap = self._t.call(self._calls.create(body))
        if snap.state in LOGGED_STATES:
            lines = LogLines(on_logs)
            with self._t.stream(self._calls.logs(snap.id)) as pieces:
                for piece in pieces:
                    lines.feed(piece)
            lines.close()
            snap = self._t.call(self._calls.get(snap.id))
            wait = Backoff(timeout)
            while snap.state in BUILDING_STATES:  # the log ended just before the record
                time.sleep(wait.next(f"snapshot {name!r}"))
                snap = self._t.call(self._calls.get(snap.id))
        return finished(snap)

    def list(self) -> list[Snapshot]:
        return self._t.call(self._calls.list())

    def get(self, name_or_id: str) -> Snapshot:
        return self._t.call(self._calls.get(name_or_id))

    def delete(self, snapshot: Snapshot | str) -> None:
        self._t.call(self._calls.delete(_ref(snapshot)))

    def activate(self, snapshot: Snapshot | str) -> Snapshot:
        return self._t.call(self._calls.activate(_ref(snapshot)))


class AsyncSnapshots:
    def __init__(self, transport: AsyncTransport, calls: SnapshotCalls) -> None:
        self._t, self._calls = transport, calls

    async def create(
        self, name: str, image: Any = None, *, dockerfile: str | None = None,
        entrypoint: list[str] | None = None, cpu: int | None = None, memory: int | None = None,
        disk: int | None = None, on_logs: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> Snapshot:  # fmt: skip
        import asyncio

        body = create_body(name, image, dockerfile, entrypoint, cpu, memory, disk)
        snap = await self._t.call(self._calls.create(body))
        if snap.state in LOGGED_STATES:
            lines = LogLines(on_logs)
            async with self._t.stream(self._calls.logs(snap.id)) as pieces:
                async for piece in pieces:
                    lines.feed(piece)
            lines.close()
            snap = await self._t.call(self._calls.get(snap.id))
            wait = Backoff(timeout)
            while snap.state in BUILDING_STATES:
                await asyncio.sleep(wait.next(f"snapshot {name!r}"))
                snap = await self._t.call(self._calls.get(snap.id))
        return finished(snap)

    async def list(self) -> list[Snapshot]:
        return await self._t.call(self._calls.list())

    async def get(self, name_or_id: str) -> Snapshot:
        return await self._t.call(self._calls.get(name_or_id))

    async def delete(self, snapshot: Snapshot | str) -> None:
        await self._t.call(self._calls.delete(_ref(snapshot)))

    async def activate(self, snapshot: Snapshot | str) -> Snapshot:
        return await self._t.call(self._calls.activate(_ref(snapshot)))
