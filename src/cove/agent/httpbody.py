"""Streamed HTTP/1.1 bodies for the agent's server: read as they arrive, sent as produced.

File transfers are gigabytes, the agent's memory a few MB: a request body is
handed to its handler as a `Body` to read piece by piece (Content-Length or
chunked framing undone here), and a response may be a `BodyWriter` callback
that writes pieces (or whole file ranges, by `sendfile`) as it makes them.
"""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from cove.wire import http1
from cove.wire.numbers import is_number

READ_SIZE = 256 * 1024  # what one `read()` asks for: a few syscalls per MiB


class Body:
    """A request body, read at most `n` bytes at a time; b"" once it has all arrived.

    A peer that leaves mid-body raises `asyncio.IncompleteReadError` (or a
    `ConnectionError`) from `read`: the handler sees the transfer fail and
    removes what it started.
    """

    def __init__(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        self._reader = reader
        self.chunked = http1.is_chunked(headers)
        declared = headers.get("content-length", "0").strip() or "0"
        if not is_number(declared):
            raise http1.HeadError(f"bad Content-Length {declared!r}")
        # Bytes the peer announced (None when chunked: unknown until the end).
        self.length: int | None = None if self.chunked else int(declared)
        self._left = 0 if self.chunked else int(declared)  # of the body or the current chunk
        self.done = not self.chunked and self._left == 0
        self.received = 0

    async def read(self, n: int = READ_SIZE) -> bytes:
        if self.done:
            return b""
        if self.chunked and self._left == 0:
            await self._next_chunk()
            if self.done:
                return b""
        data = await self._reader.read(min(n, self._left))
        if not data:
            raise asyncio.IncompleteReadError(b"", self._left)
        self._left -= len(data)
        self.received += len(data)
        if self._left == 0:
            if self.chunked:
                await self._reader.readexactly(2)  # the CRLF after a chunk's data
            else:
                self.done = True
        return data

    async def _next_chunk(self) -> None:
        line = await self._reader.readuntil(b"\r\n")
        if len(line) > http1.MAX_CHUNK_LINE:
            raise http1.HeadError("chunk size line too long")
        size = http1.parse_chunk_size(line)
        if size == 0:
            # Trailer fields (none expected) end with a blank line.
            while await self._reader.readuntil(b"\r\n") != b"\r\n":
                pass
            self.done = True
        self._left = size

    async def discard(self, limit: int) -> bool:
        """Read and drop what is left, up to `limit` bytes; whether the body is done."""
        while not self.done and self.received < limit:
            await self.read()
        return self.done

    async def read_all(self, limit: int) -> bytes:
        """The whole body; `OverflowError` past `limit` bytes."""
        if self.length is not None and self.length > limit:
            raise OverflowError(self.length)
        parts: list[bytes] = []
        while data := await self.read():
            parts.append(data)
            if self.received > limit:
                raise OverflowError(self.received)
        return b"".join(parts)


class BodyWriter:
    """A response body sent as it is produced: raw when its length was announced,
    chunked otherwise."""

    def __init__(self, writer: asyncio.StreamWriter, chunked: bool) -> None:
        self._writer = writer
        self.chunked = chunked
        self.sent = 0

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self.chunked:
            self._writer.writelines((http1.chunk_head(len(data)), data, b"\r\n"))
        else:
            self._writer.write(data)
        self.sent += len(data)
        await self._writer.drain()

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> int:
        """`count` bytes of `file` from `offset` by the kernel (no copy through the agent).

        Returns the bytes sent: fewer when the file shrank meanwhile, in which
        case the caller must end the connection (the announced length is a lie now).
        """
        if count <= 0:
            return 0
        if self.chunked:
            self._writer.write(http1.chunk_head(count))
        await self._writer.drain()
        loop = asyncio.get_running_loop()
        sent = await loop.sendfile(self._writer.transport, file, offset, count)
        self.sent += sent
        if self.chunked and sent == count:
            self._writer.write(b"\r\n")
        return sent

    async def finish(self) -> None:
        if self.chunked:
            self._writer.write(http1.LAST_CHUNK)
        await self._writer.drain()
