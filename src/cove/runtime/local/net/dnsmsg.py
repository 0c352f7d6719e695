"""The little of DNS messages (RFC 1035) the policy resolver reads and writes."""

from __future__ import annotations

import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_AAAA = 28
RCODE_SERVFAIL = 2
RCODE_REFUSED = 5


class DnsError(ValueError):
    """A message that is not DNS (or not one we can read)."""


@dataclass
class Question:
    name: str
    qtype: int
    end: int  # offset just past the question section's first entry


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    """A possibly compressed name at `pos`; returns it and the offset after it."""
    labels: list[str] = []
    end = -1
    for _ in range(128):  # bounds pointer loops
        if pos >= len(msg):
            raise DnsError("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DnsError("truncated pointer")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length == 0:
            return ".".join(labels).lower(), (end if end >= 0 else pos + 1)
        labels.append(msg[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    raise DnsError("name has too many labels or a pointer loop")


def question(msg: bytes) -> Question:
    if len(msg) < 12:
        raise DnsError("shorter than a DNS header")
    (qdcount,) = struct.unpack_from("!H", msg, 4)
    if qdcount != 1:
        raise DnsError(f"{qdcount} questions (one expected)")
    name, pos = _name(msg, 12)
    if pos + 4 > len(msg):
        raise DnsError("truncated question")
    (qtype,) = struct.unpack_from("!H", msg, pos)
    return Question(name, qtype, pos + 4)


def a_records(msg: bytes) -> list[tuple[str, int]]:
    """(IPv4 address, TTL) of every A record in the answer section."""
    q = question(msg)
    (ancount,) = struct.unpack_from("!H", msg, 6)
    pos = q.end
    out = []
    for _ in range(ancount):
        _, pos = _name(msg, pos)
        if pos + 10 > len(msg):
            raise DnsError("truncated answer")
        rtype, _cls, ttl, rdlen = struct.unpack_from("!HHIH", msg, pos)
        pos += 10
        if rtype == TYPE_A and rdlen == 4 and pos + 4 <= len(msg):
            out.append((".".join(str(b) for b in msg[pos : pos + 4]), ttl))
        pos += rdlen
    return out


def reply(query: bytes, rcode: int) -> bytes:
    """An answerless reply to `query` with `rcode` (REFUSED, SERVFAIL, or 0 for "no records")."""
    q = question(query)
    (ident, flags) = struct.unpack_from("!HH", query, 0)
    flags = 0x8000 | (flags & 0x0100) | 0x0080 | rcode  # QR, the query's RD, RA
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + query[12 : q.end]


def answer_a(query: bytes, address: str, ttl: int) -> bytes:
    """An authoritative reply to `query` with one A record (a name the resolver knows itself)."""
    q = question(query)
    (ident, flags) = struct.unpack_from("!HH", query, 0)
    flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080  # QR, AA, the query's RD, RA
    head = struct.pack("!HHHHHH", ident, flags, 1, 1, 0, 0) + query[12 : q.end]
    # The name as a pointer to the question's (offset 12), class IN.
    record = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, ttl, 4)
    return head + record + bytes(int(b) for b in address.split("."))
