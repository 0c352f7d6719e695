"""The agent's streamed bodies and multipart reader, fed in every awkward split.

A boundary or a chunk-size line cut across reads must not change what comes
out; a body that ends early must fail, not pass as shorter.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from cove.agent.files.multipart import MultipartError, MultipartReader, disposition
from cove.agent.httpbody import Body
from cove.wire import http1

BOUNDARY = "XyZ-boundary"


def multipart(fields: list[tuple[str, bytes]]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, data in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        out += b'; filename="a\\"b"\r\n\r\n' + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\nepilogue".encode()


def chunked(data: bytes, rng: random.Random) -> bytes:
    out, i = b"", 0
    while i < len(data):
        n = rng.randint(1, 5000)
        out += http1.chunk_head(len(data[i : i + n])) + data[i : i + n] + b"\r\n"
        i += n
    return out + http1.LAST_CHUNK


async def read_parts(wire: bytes, headers: dict[str, str], rng: random.Random) -> list[tuple]:
    reader = asyncio.StreamReader()
    i = 0
    while i < len(wire):  # fed in random pieces: boundaries and size lines get cut
        n = rng.randint(1, 3000)
        reader.feed_data(wire[i : i + n])
        i += n
    reader.feed_eof()
    body = Body(reader, headers)
    parts = MultipartReader(body, BOUNDARY.encode())
    out = []
    while (part := await parts.next_part()) is not None:
        data = b""
        while piece := await parts.read(rng.randint(1, 700)):
            data += piece
        out.append((part.name, part.filename, data))
    assert body.done
    return out


# Data that looks like the boundary without being it, and CRLFs at every edge.
FIELDS = [
    ("files[0].path", b"dir/\xc3\xa9t\xc3\xa9.txt"),
    ("files[0].file", b"\r\n--XyZ-boundar\r\n--XyZ" + bytes(range(256)) * 40 + b"\r\n"),
    ("files[1].file", b""),
]


@pytest.mark.parametrize("seed", range(20))
def test_multipart_in_any_split_content_length(seed: int) -> None:
    rng = random.Random(seed)
    wire = multipart(FIELDS)
    got = asyncio.run(read_parts(wire, {"content-length": str(len(wire))}, rng))
    assert [(n, d) for n, _, d in got] == FIELDS
    assert got[0][1] == 'a"b'


@pytest.mark.parametrize("seed", range(20))
def test_multipart_in_any_split_chunked(seed: int) -> None:
    rng = random.Random(seed)
    wire = chunked(multipart(FIELDS), rng)
    got = asyncio.run(read_parts(wire, {"transfer-encoding": "chunked"}, rng))
    assert [(n, d) for n, _, d in got] == FIELDS


def test_a_body_cut_short_fails() -> None:
    wire = multipart(FIELDS)
    cut = wire[: len(wire) // 2]
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(read_parts(cut, {"content-length": str(len(wire))}, random.Random(1)))


def test_a_body_without_its_closing_boundary_fails() -> None:
    wire = multipart(FIELDS).split(f"--{BOUNDARY}--".encode())[0]
    with pytest.raises(MultipartError, match="closing boundary"):
        asyncio.run(read_parts(wire, {"content-length": str(len(wire))}, random.Random(1)))


def test_disposition_keeps_any_file_name() -> None:
    assert disposition("file", "plain.txt") == 'form-data; name="file"; filename="plain.txt"'
    odd = disposition("file", 'dir/é "q".txt')
    assert "filename*=utf-8''dir%2F%C3%A9%20%22q%22.txt" in odd


def test_ranges() -> None:
    assert http1.parse_range("bytes=2-4", 10) == (2, 5)
    assert http1.parse_range("bytes=7-", 10) == (7, 10)
    assert http1.parse_range("bytes=-3", 10) == (7, 10)
    assert http1.parse_range("bytes=5-100", 10) == (5, 10)
    assert http1.parse_range("bytes=1-2,4-5", 10) is None  # several: the whole body
    assert http1.parse_range("items=1-2", 10) is None
    with pytest.raises(http1.RangeError):
        http1.parse_range("bytes=10-", 10)
