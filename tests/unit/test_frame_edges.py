"""The relay's frame tracker finds frame boundaries however the bytes are split."""

from __future__ import annotations

import random

from cove.server.wsagent import FrameEdges, close_frame
from cove.wire.websocket import OP_BINARY, OP_TEXT, encode_frame

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70001]


def _stream(seed: int) -> tuple[bytes, list[int]]:
    """Frames of every length class, masked and not; returns bytes and where frames end."""
    rng = random.Random(seed)
    out, ends = bytearray(), []
    for size in SIZES:
        op = rng.choice([OP_TEXT, OP_BINARY])
        out += encode_frame(
            op, bytes(rng.randrange(256) for _ in range(size)), mask=rng.random() < 0.5
        )
        ends.append(len(out))
    return bytes(out), ends


def test_boundaries_under_any_split() -> None:
    data, ends = _stream(1)
    for seed in range(20):
        rng = random.Random(seed)
        edges, pos = FrameEdges(), 0
        while pos < len(data):
            step = rng.choice([1, 2, 3, 7, 100, 4096, 70000])
            edges.feed(data[pos : pos + step])
            pos = min(pos + step, len(data))
            assert edges.between_frames == (pos in ends), f"seed {seed}, at byte {pos}"
        assert not edges.saw_close


def test_a_close_frame_is_seen_and_split_headers_are_not_boundaries() -> None:
    edges = FrameEdges()
    frame = encode_frame(OP_BINARY, b"x" * 300, mask=False)  # 2 + 2 byte header
    edges.feed(frame[:3])
    assert not edges.between_frames  # inside the extended length
    edges.feed(frame[3:])
    assert edges.between_frames
    closing = close_frame(1011, "sandbox agent went away")
    edges.feed(closing)
    assert edges.saw_close and edges.between_frames
    assert closing[2:4] == (1011).to_bytes(2, "big")
