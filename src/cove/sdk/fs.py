"""`sandbox.fs`: Daytona's file system calls, streamed both ways, on both faces.

Requests are built once in `_fs_calls`; `FileSystem` and `AsyncFileSystem`
only send them. Uploads read their sources piece by piece and downloads hand
on pieces as they arrive, so no file is held whole in memory unless the
caller asks for bytes. Paths inside the sandbox are relative to its working
directory, or absolute.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, overload

from cove.sdk._base import Toolbox
from cove.sdk._fs_calls import (
    PIECE,
    TRANSFER_TIMEOUT,
    FileDownloadRequest,
    FileDownloadResponse,
    FileSystemCalls,
    FileUpload,
    Segment,
    Source,
    UploadBody,
)
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.wire.errors import BadRequest, CoveError
from cove.wire.protocol import FileInfo, Match, ReplaceResult, SearchFilesResponse

__all__ = ["AsyncFileSystem", "FileDownloadRequest", "FileDownloadResponse", "FileSystem",
           "FileUpload"]  # fmt: skip


# Called with the bytes of file content sent so far (the CLI's progress bar).
Progress = Callable[[int], object]


def _sync_pieces(segments: list[Segment], on_progress: Progress | None = None) -> Iterator[bytes]:
    sent = 0
    for seg in segments:
        if seg.source is None:
            yield seg.data
            continue
        for data in _read_source(seg.source):
            yield data
            sent += len(data)
            if on_progress is not None:
                on_progress(sent)


def _read_source(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray):
        yield bytes(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            while data := f.read(PIECE):
                yield data
    elif hasattr(source, "read"):
        while data := source.read(PIECE):
            yield data
    else:
        raise BadRequest(f"cannot upload from a {type(source).__name__}")


async def _async_pieces(
    segments: list[Segment], on_progress: Progress | None = None
) -> AsyncIterator[bytes]:
    sent = 0
    for seg in segments:
        if seg.source is None:
            yield seg.data
            continue
        async for data in _aread_source(seg.source):
            yield data
            sent += len(data)
            if on_progress is not None:
                on_progress(sent)


async def _aread_source(source: Source) -> AsyncIterator[bytes]:
    if hasattr(source, "__aiter__"):
        async for data in source:
            yield data
    elif callable(getattr(source, "read", None)):
        reader: Any = source  # a sync or an async file object
        while True:
            data = reader.read(PIECE)
            if hasattr(data, "__await__"):  # an async file object
                data = await data
            if not data:
                break
            yield data
    else:
        # Local files are read in the loop's thread: a read of 1 MiB from the
        # page cache is shorter than the hop that sends it.
        for data in _read_source(source):
            yield data


def _bad_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise BadRequest("depth must be at least 1")


class FileSystem:
    def __init__(self, transport: SyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = FileSystemCalls(toolbox)

    def create_folder(self, path: str, mode: str = "755") -> None:
        self._t.call(self.calls.create_folder(path, mode))

    def delete_file(self, path: str, recursive: bool = False) -> None:
        self._t.call(self.calls.delete_file(path, recursive))

    def get_file_info(self, path: str) -> FileInfo:
        return self._t.call(self.calls.get_file_info(path))

    def list_files(self, path: str, depth: int | None = None) -> list[FileInfo]:
        _bad_depth(depth)
        return self._t.call(self.calls.list_files(path, depth))

    def find_files(self, path: str, pattern: str) -> list[Match]:
        return self._t.call(self.calls.find_files(path, pattern))

    def search_files(self, path: str, pattern: str) -> SearchFilesResponse:
        return self._t.call(self.calls.search_files(path, pattern))

    def replace_in_files(
        self, files: list[str], pattern: str, new_value: str
    ) -> list[ReplaceResult]:
        return self._t.call(self.calls.replace_in_files(files, pattern, new_value))

    def move_files(self, source: str, destination: str) -> None:
        self._t.call(self.calls.move_files(source, destination))

    def set_file_permissions(
        self, path: str, mode: str | None = None, owner: str | None = None,
        group: str | None = None,
    ) -> None:  # fmt: skip
        self._t.call(self.calls.set_file_permissions(path, mode, owner, group))

    def upload_files(
        self, files: list[FileUpload], timeout: float = TRANSFER_TIMEOUT,
        on_progress: Progress | None = None,
    ) -> None:  # fmt: skip
        """All of them or none: the sandbox renames them into place once all have arrived."""
        body = UploadBody.of(files)
        call = self.calls.upload(body, timeout)
        call.content = _sync_pieces(body.segments, on_progress)
        self._t.call(call)

    def upload_file(self, src: Source, dst: str, timeout: float = TRANSFER_TIMEOUT) -> None:
        """`src`: the bytes, a local path, or an open binary file (read to its end)."""
        self.upload_files([FileUpload(src, dst)], timeout)

    upload_file_stream = upload_file

    def download_file_stream(
        self, remote_path: str, timeout: float = TRANSFER_TIMEOUT
    ) -> Iterator[bytes]:
        """The file's bytes in pieces as they arrive."""
        with self._t.stream(self.calls.download(remote_path, timeout)) as pieces:
            yield from pieces

    @overload
    def download_file(self, remote_path: str, timeout: float = ...) -> bytes: ...
    @overload
    def download_file(self, remote_path: str, local_path: str, timeout: float = ...) -> None: ...

    def download_file(self, remote_path: str, *args: Any, **kwargs: Any) -> bytes | None:
        """The bytes, or (with `local_path`) written to that local file as they arrive."""
        local_path, timeout = _download_args(args, kwargs)
        pieces = self.download_file_stream(remote_path, timeout)
        if local_path is None:
            return b"".join(pieces)
        with _LocalFile(local_path) as f:
            for data in pieces:
                f.write(data)
        return None

    def download_files(
        self, files: list[FileDownloadRequest], timeout: float = TRANSFER_TIMEOUT
    ) -> list[FileDownloadResponse]:
        """Each file's bytes (or local path written), or its error; one failure stops none."""
        out = []
        for f in files:
            try:
                if f.destination is None:
                    out.append(
                        FileDownloadResponse(f.source, self.download_file(f.source, timeout))
                    )
                else:
                    self.download_file(f.source, f.destination, timeout)
                    out.append(FileDownloadResponse(f.source, f.destination))
            except CoveError as err:
                out.append(FileDownloadResponse(f.source, error=err.message))
        return out


class AsyncFileSystem:
    def __init__(self, transport: AsyncTransport, toolbox: Toolbox) -> None:
        self._t = transport
        self.calls = FileSystemCalls(toolbox)

    async def create_folder(self, path: str, mode: str = "755") -> None:
        await self._t.call(self.calls.create_folder(path, mode))

    async def delete_file(self, path: str, recursive: bool = False) -> None:
        await self._t.call(self.calls.delete_file(path, recursive))

    async def get_file_info(self, path: str) -> FileInfo:
        return await self._t.call(self.calls.get_file_info(path))

    async def list_files(self, path: str, depth: int | None = None) -> list[FileInfo]:
        _bad_depth(depth)
        return await self._t.call(self.calls.list_files(path, depth))

    async def find_files(self, path: str, pattern: str) -> list[Match]:
        return await self._t.call(self.calls.find_files(path, pattern))

    async def search_files(self, path: str, pattern: str) -> SearchFilesResponse:
        return await self._t.call(self.calls.search_files(path, pattern))

    async def replace_in_files(
        self, files: list[str], pattern: str, new_value: str
    ) -> list[ReplaceResult]:
        return await self._t.call(self.calls.replace_in_files(files, pattern, new_value))

    async def move_files(self, source: str, destination: str) -> None:
        await self._t.call(self.calls.move_files(source, destination))

    async def set_file_permissions(
        self, path: str, mode: str | None = None, owner: str | None = None,
        group: str | None = None,
    ) -> None:  # fmt: skip
        await self._t.call(self.calls.set_file_permissions(path, mode, owner, group))

    async def upload_files(
        self, files: list[FileUpload], timeout: float = TRANSFER_TIMEOUT,
        on_progress: Progress | None = None,
    ) -> None:  # fmt: skip
        """All of them or none: the sandbox renames them into place once all have arrived."""
        body = UploadBody.of(files)
        call = self.calls.upload(body, timeout)
        call.content = _async_pieces(body.segments, on_progress)
        await self._t.call(call)

    async def upload_file(self, src: Source, dst: str, timeout: float = TRANSFER_TIMEOUT) -> None:
        """`src`: the bytes, a local path, an open file (sync or async), or an async iterable."""
        await self.upload_files([FileUpload(src, dst)], timeout)

    upload_file_stream = upload_file

    async def download_file_stream(
        self, remote_path: str, timeout: float = TRANSFER_TIMEOUT
    ) -> AsyncIterator[bytes]:
        """The file's bytes in pieces as they arrive (`async for b in await ...`, as Daytona's)."""
        return self._pieces(remote_path, timeout)

    async def _pieces(self, remote_path: str, timeout: float) -> AsyncIterator[bytes]:
        async with self._t.stream(self.calls.download(remote_path, timeout)) as pieces:
            async for data in pieces:
                yield data

    async def download_file(self, remote_path: str, *args: Any, **kwargs: Any) -> bytes | None:
        local_path, timeout = _download_args(args, kwargs)
        pieces = self._pieces(remote_path, timeout)
        if local_path is None:
            return b"".join([data async for data in pieces])
        with _LocalFile(local_path) as f:
            async for data in pieces:
                f.write(data)
        return None

    async def download_files(
        self, files: list[FileDownloadRequest], timeout: float = TRANSFER_TIMEOUT
    ) -> list[FileDownloadResponse]:
        out = []
        for f in files:
            try:
                if f.destination is None:
                    data = await self.download_file(f.source, timeout)
                    out.append(FileDownloadResponse(f.source, data))
                else:
                    await self.download_file(f.source, f.destination, timeout)
                    out.append(FileDownloadResponse(f.source, f.destination))
            except CoveError as err:
                out.append(FileDownloadResponse(f.source, error=err.message))
        return out


def _download_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, float]:
    """Daytona's overloads: `(remote[, timeout])` or `(remote, local[, timeout])`."""
    local: str | None = kwargs.pop("local_path", None)
    timeout = kwargs.pop("timeout", TRANSFER_TIMEOUT)
    rest = list(args)
    if rest and isinstance(rest[0], str | os.PathLike):
        local = os.fspath(rest.pop(0))
    if rest:
        timeout = rest.pop(0)
    if rest or kwargs:
        raise TypeError(f"download_file: unexpected arguments {rest or list(kwargs)}")
    return local, float(timeout)


class _LocalFile:
    """A local file written through a temporary sibling: a failed download leaves none."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        self.tmp = os.path.join(parent, f".{os.path.basename(self.path)}.cove-part")

    def __enter__(self) -> Any:
        self.f = open(self.tmp, "wb")
        return self.f

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
