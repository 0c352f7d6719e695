"""Images through the Cove SDK: `client.images.build/list/prune` (sync and async faces).

A build sends its context straight to the server as a tar (no object store)
and reads the answer's NDJSON as it arrives: log lines to `on_log`, then
the image or the build's error. `BuildReader` does the parsing and no I/O;
both faces feed it.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.sdk._base import Call, Endpoints
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.wire.errors import BadRequest, CoveError, InternalError, SandboxError

DOCKERFILE_IN_CONTEXT = ".cove-build.Dockerfile"  # where a Dockerfile from outside goes
PathArg = str | os.PathLike[str]


@dataclass
class BuiltImage:
    id: str
    tag: str | None
    size: int


@dataclass
class ImageInfo:
    id: str
    tags: list[str]
    size: int
    last_used_at: str
    in_use: bool
    source: str


def context_tar(
    context: str | os.PathLike[str], dockerfile: str | os.PathLike[str]
) -> tuple[bytes, str]:
    """The build context as a tar, and the Dockerfile's path inside it."""
    root = Path(context)
    if not root.is_dir():
        raise BadRequest(f"build context {str(root)!r} is not a directory")
    df = Path(dockerfile)
    if not df.is_absolute() and not df.exists():
        df = root / df
    if not df.is_file():
        raise BadRequest(f"no Dockerfile at {str(df)!r}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=".")
        inside = df.resolve()
        if inside.is_relative_to(root.resolve()):
            name = str(inside.relative_to(root.resolve()))
        else:
            name = DOCKERFILE_IN_CONTEXT
            tar.add(inside, arcname=name)
    return buf.getvalue(), name


class BuildReader:
    """The build answer's NDJSON, fed in pieces: logs out as they come, then the result."""

    def __init__(self, on_log: Callable[[str], None] | None) -> None:
        self.on_log = on_log
        self.pending = b""
        self.image: BuiltImage | None = None
        self.error: CoveError | None = None

    def feed(self, piece: bytes) -> None:
        self.pending += piece
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            if line.strip():
                self._event(json.loads(line))

    def _event(self, event: dict[str, Any]) -> None:
        if "log" in event and self.on_log is not None:
            self.on_log(str(event["log"]))
        elif "image" in event:
            i = event["image"]
            self.image = BuiltImage(str(i["id"]), i.get("tag"), int(i.get("size") or 0))
        elif "error" in event:
            self.error = SandboxError(f"image build failed: {event['error'].get('message')}")

    def result(self) -> BuiltImage:
        self.feed(b"\n")
        if self.error is not None:
            raise self.error
        if self.image is None:
            raise InternalError("the image build ended without a result")
        return self.image


class ImageCalls:
    def __init__(self, endpoints: Endpoints) -> None:
        self.ep = endpoints

    def build(self, tar: bytes, dockerfile: str, tag: str | None) -> Call[None]:
        params = {"dockerfile": dockerfile, **({"tag": tag} if tag else {})}
        return Call(
            "POST", self.ep.api("/images/build"), "build image", lambda _: None, params=params,
            content=tar, headers={"Content-Type": "application/x-tar"}, timeout=None,
        )  # fmt: skip

    def list(self) -> Call[list[ImageInfo]]:
        def parse(data: Any) -> list[ImageInfo]:
            return [
                ImageInfo(i["id"], i["tags"], i["size"], i["lastUsedAt"], i["inUse"], i["source"])
                for i in data["items"]
            ]

        return Call("GET", self.ep.api("/images"), "list images", parse)

    def prune(self, everything: bool) -> Call[dict[str, Any]]:
        params = {"all": "true"} if everything else None
        return Call("POST", self.ep.api("/images/prune"), "prune images", dict, params=params)


class Images:
    def __init__(self, transport: SyncTransport, calls: ImageCalls) -> None:
        self._t, self._calls = transport, calls

    def build(
        self, context: PathArg = ".", dockerfile: PathArg = "Dockerfile",
        tag: str | None = None, on_log: Callable[[str], None] | None = None,
    ) -> BuiltImage:  # fmt: skip
        """Build the Dockerfile with `context`; `tag` names it for `create(snapshot=tag)`."""
        tar, name = context_tar(context, dockerfile)
        reader = BuildReader(on_log)
        with self._t.stream(self._calls.build(tar, name, tag)) as pieces:
            for piece in pieces:
                reader.feed(piece)
        return reader.result()

    def list(self) -> list[ImageInfo]:
        return self._t.call(self._calls.list())

    def prune(self, everything: bool = False) -> dict[str, Any]:
        return self._t.call(self._calls.prune(everything))


class AsyncImages:
    def __init__(self, transport: AsyncTransport, calls: ImageCalls) -> None:
        self._t, self._calls = transport, calls

    async def build(
        self, context: PathArg = ".", dockerfile: PathArg = "Dockerfile",
        tag: str | None = None, on_log: Callable[[str], None] | None = None,
    ) -> BuiltImage:  # fmt: skip
        tar, name = context_tar(context, dockerfile)
        reader = BuildReader(on_log)
        async with self._t.stream(self._calls.build(tar, name, tag)) as pieces:
            async for piece in pieces:
                reader.feed(piece)
        return reader.result()

    async def list(self) -> list[ImageInfo]:
        return await self._t.call(self._calls.list())

    async def prune(self, everything: bool = False) -> dict[str, Any]:
        return await self._t.call(self._calls.prune(everything))
