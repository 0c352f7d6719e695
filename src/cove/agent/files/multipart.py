"""multipart/form-data both ways, streamed: a reader for uploads, part heads for downloads.

The standard library's `email` parser wants a whole message in memory; an
upload part may be gigabytes, so the reader here hands a part's data out as it
arrives, holding back only what could be the start of the next boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from cove.agent.httpbody import READ_SIZE, Body
from cove.wire.errors import BadRequest

MAX_PART_HEAD = 16 * 1024


class MultipartError(BadRequest):
    """The body is not the multipart/form-data it claims to be."""


def boundary_of(content_type: str) -> bytes:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise BadRequest(f"expected a multipart/form-data body, got {kind.strip() or 'none'!r}")
    found = re.search(r'boundary=(?:"([^"]+)"|([^\s;]+))', params)
    if not found:
        raise BadRequest("the multipart/form-data Content-Type names no boundary")
    return (found.group(1) or found.group(2)).encode("latin-1")


def _params(value: str) -> dict[str, str]:
    """`name="a"; filename="b"` (quoted-pairs undone; RFC 5987 `filename*` decoded)."""
    out: dict[str, str] = {}
    for m in re.finditer(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', value):
        name = m.group(1).lower()
        text = re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        if name.endswith("*"):
            charset, _, rest = text.strip().partition("''")
            name, text = name[:-1], unquote(rest, encoding=charset or "utf-8", errors="replace")
        out.setdefault(name, text)
    return out


@dataclass
class Part:
    headers: dict[str, str]
    name: str
    filename: str | None


class MultipartReader:
    """Parts of a body one after another: `next_part()`, then `read()` until b""."""

    def __init__(self, body: Body, boundary: bytes) -> None:
        self._body = body
        self._delim = b"\r\n--" + boundary
        # A CRLF in front lets the first boundary match like every later one.
        self._buf = bytearray(b"\r\n")
        self._in_part = False
        self._started = False  # past the first boundary
        self._ended = False

    async def _fill(self) -> None:
        data = await self._body.read(READ_SIZE)
        if not data:
            raise MultipartError("the multipart body ended before its closing boundary")
        self._buf += data

    async def next_part(self) -> Part | None:
        """The next part's head, or None after the closing boundary."""
        while self._in_part:  # skip what the caller did not read
            await self.read()
        if self._ended:
            return None
        if not self._started:
            while (i := self._buf.find(self._delim)) < 0:  # the preamble
                del self._buf[: max(0, len(self._buf) - len(self._delim))]
                await self._fill()
            del self._buf[: i + len(self._delim)]
            self._started = True
        while len(self._buf) < 2:
            await self._fill()
        if self._buf[:2] == b"--":
            self._ended = True
            while await self._body.read():  # the epilogue, ignored
                pass
            return None
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_PART_HEAD:
                raise MultipartError("a multipart part's head is longer than 16 KiB")
            await self._fill()
        lines = self._buf[:end].decode("utf-8", "replace").split("\r\n")
        del self._buf[: end + 4]
        headers: dict[str, str] = {}
        for line in lines[1:]:  # lines[0] is what followed the boundary on its line
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        params = _params(headers.get("content-disposition", ""))
        self._in_part = True
        return Part(headers, params.get("name", ""), params.get("filename"))

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to `n` bytes of the current part's data; b"" at its end."""
        if not self._in_part:
            return b""
        while True:
            i = self._buf.find(self._delim)
            if i == 0:
                del self._buf[: len(self._delim)]
                self._in_part = False
                return b""
            # Without a boundary in sight, all but its possible start is data.
            safe = i if i > 0 else len(self._buf) - len(self._delim) + 1
            if safe > 0:
                take = min(safe, n)
                data = bytes(self._buf[:take])
                del self._buf[:take]
                return data
            await self._fill()

    async def read_all(self, limit: int) -> bytes:
        parts = []
        size = 0
        while data := await self.read():
            size += len(data)
            if size > limit:
                raise MultipartError(f"a multipart field is longer than {limit} bytes")
            parts.append(data)
        return b"".join(parts)


def disposition(name: str, filename: str) -> str:
    """A Content-Disposition naming `filename` losslessly (RFC 5987 when not plain ASCII)."""
    plain = filename.isascii() and filename.isprintable()
    quoted = (filename if plain else "download").replace("\\", "\\\\").replace('"', '\\"')
    value = f'form-data; name="{name}"; filename="{quoted}"'
    if not plain:
        value += "; filename*=utf-8''" + quote(filename, safe="", errors="surrogateescape")
    return value


def part_head(boundary: str, name: str, filename: str, content_type: str, length: int) -> bytes:
    return (
        f"--{boundary}\r\n"
        f"Content-Disposition: {disposition(name, filename)}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode("utf-8", "surrogateescape")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")
