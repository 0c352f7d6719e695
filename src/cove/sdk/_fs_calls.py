"""`sandbox.fs` requests, built once for both faces (no I/O here).

JSON calls are `Call`s like every other. An upload is a multipart body laid
out as `Segment`s (bytes, or a source to read: a local path or a file
object); each face only reads the sources its own way. Downloads are
`Call`s the transports stream (`SyncTransport.stream`, `AsyncTransport.stream`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from cove.sdk._base import LIFECYCLE_TIMEOUT, Call, Toolbox
from cove.wire.protocol import FileInfo, Match, ReplaceResult, SearchFilesResponse

PIECE = 1 << 20  # bytes read from a local source at a time
TRANSFER_TIMEOUT = 30 * 60.0  # Daytona's default for a transfer, in seconds

# What an upload's bytes may come from: the bytes, a local path, or an open file
# (sync `read(n)`; on the async face also `async read(n)` or an async iterable).
Source = bytes | bytearray | str | os.PathLike[str] | BinaryIO | Any


@dataclass
class FileUpload:
    """One file of `upload_files`: its bytes (or where to read them) and its path inside."""

    source: Source
    destination: str


@dataclass
class FileDownloadRequest:
    source: str
    destination: str | None = None  # a local path; None keeps the bytes in `result`


@dataclass
class FileDownloadResponse:
    source: str
    result: bytes | str | None = None  # the bytes, or the local path written
    error: str | None = None


@dataclass
class Segment:
    """A piece of an upload body: literal bytes, or a source read in `PIECE`s."""

    data: bytes = b""
    source: Source = None


def _size(source: Source) -> int | None:
    if isinstance(source, bytes | bytearray):
        return len(source)
    if isinstance(source, str | os.PathLike):
        return os.stat(source).st_size
    return None  # an open file: read until it ends


@dataclass
class UploadBody:
    """A multipart/form-data body in Daytona's shape: `files[i].path`, then `files[i].file`."""

    segments: list[Segment]
    content_type: str
    length: int | None  # None when a source's size is unknown (sent chunked)

    @classmethod
    def of(cls, files: list[FileUpload]) -> UploadBody:
        boundary = "cove-" + secrets.token_hex(16)
        segments: list[Segment] = []
        length: int | None = 0
        for i, f in enumerate(files):
            name = os.path.basename(f.destination).replace('"', "%22") or "file"
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files[{i}].path"\r\n\r\n'
                f"{f.destination}\r\n--{boundary}\r\n"
                f'Content-Disposition: form-data; name="files[{i}].file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode("utf-8", "surrogateescape")
            segments += [Segment(head), Segment(source=f.source), Segment(b"\r\n")]
            size = _size(f.source)
            length = None if length is None or size is None else length + len(head) + size + 2
        tail = f"--{boundary}--\r\n".encode()
        segments.append(Segment(tail))
        if length is not None:
            length += len(tail)
        return cls(segments, f"multipart/form-data; boundary={boundary}", length)

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type}
        if self.length is not None:
            headers["Content-Length"] = str(self.length)
        return headers


def _list(model: Callable[[Any, str], Any], what: str) -> Callable[[Any], list[Any]]:
    def parse(data: Any) -> list[Any]:
        return [model(item, what) for item in data or []]

    return parse


class FileSystemCalls:
    def __init__(self, toolbox: Toolbox) -> None:
        self.tb = toolbox

    def _void(self, method: str, path: str, what: str, params: dict[str, str]) -> Call[None]:
        return Call(method, self.tb.url(path), what, lambda _: None, None, params,
                    LIFECYCLE_TIMEOUT, False)  # fmt: skip

    def create_folder(self, path: str, mode: str) -> Call[None]:
        return self._void("POST", "/files/folder", "create folder", {"path": path, "mode": mode})

    def delete_file(self, path: str, recursive: bool) -> Call[None]:
        params = {"path": path, "recursive": "true" if recursive else "false"}
        return self._void("DELETE", "/files", "delete file", params)

    def move_files(self, source: str, destination: str) -> Call[None]:
        params = {"source": source, "destination": destination}
        return self._void("POST", "/files/move", "move files", params)

    def set_file_permissions(
        self, path: str, mode: str | None, owner: str | None, group: str | None
    ) -> Call[None]:
        params = {"path": path}
        for key, value in (("mode", mode), ("owner", owner), ("group", group)):
            if value is not None:
                params[key] = value
        return self._void("POST", "/files/permissions", "set file permissions", params)

    def get_file_info(self, path: str) -> Call[FileInfo]:
        def parse(data: Any) -> FileInfo:
            return FileInfo.from_wire(data, "file info")

        return self.tb.call("GET", "/files/info", "get file info", parse, params={"path": path})

    def list_files(self, path: str, depth: int | None) -> Call[list[FileInfo]]:
        params = {"path": path}
        if depth is not None:
            params["depth"] = str(depth)
        parse = _list(FileInfo.from_wire, "file info")
        return self.tb.call("GET", "/files", "list files", parse, params=params)

    def find_files(self, path: str, pattern: str) -> Call[list[Match]]:
        params = {"path": path, "pattern": pattern}
        return self.tb.call("GET", "/files/find", "find files", _list(Match.from_wire, "match"),
                            params=params)  # fmt: skip

    def search_files(self, path: str, pattern: str) -> Call[SearchFilesResponse]:
        return self.tb.call(
            "GET", "/files/search", "search files",
            lambda d: SearchFilesResponse.from_wire(d, "search result"),
            params={"path": path, "pattern": pattern},
        )  # fmt: skip

    def replace_in_files(
        self, files: list[str], pattern: str, new_value: str
    ) -> Call[list[ReplaceResult]]:
        body = {"files": files, "pattern": pattern, "newValue": new_value}
        parse = _list(ReplaceResult.from_wire, "replace result")
        return self.tb.call("POST", "/files/replace", "replace in files", parse, body)

    def upload(self, body: UploadBody, timeout: float | None) -> Call[None]:
        call: Call[None] = Call("POST", self.tb.url("/files/bulk-upload"), "upload files",
                                lambda _: None, timeout=timeout, expect_body=False)  # fmt: skip
        call.headers = body.headers()
        return call

    def download(self, path: str, timeout: float | None) -> Call[None]:
        """The raw bytes of one file; the transports stream the answer."""
        return Call("GET", self.tb.url("/files/download"), "download file", lambda _: None,
                    params={"path": path}, timeout=timeout)  # fmt: skip
