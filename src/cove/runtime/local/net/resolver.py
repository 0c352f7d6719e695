"""The policy resolver: each sandbox's only useful DNS server.

Listens on the sandbox's gateway address (UDP 53), forwards queries to the
host's resolver and, when the sandbox's policy has a domain allow list,
opens each A answer's addresses in the sandbox's nftables set for the
answer's TTL (plus a grace for clients that connect just after) before the
answer leaves: the connection that follows a lookup finds its address
allowed, and a name whose addresses change keeps working. Names outside the
list get REFUSED. AAAA questions get an empty answer, since sandboxes have
no IPv6: clients go straight to IPv4 instead of timing out.

UDP and TCP are both served (a client retries over TCP when an answer came
truncated); under a restrictive policy the sandbox can reach no other
resolver.

Linked sandboxes (owner and followers) are answered here, by sandbox name
and id, whatever the egress policy: `hosts` holds the sandbox's link peers
only, so no other sandbox's name resolves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from cove.runtime.local.net import dnsmsg
from cove.wire.numbers import is_number
from cove.wire.protocol.network import NetworkPolicy, domain_allowed

log = logging.getLogger("cove.runtime.net")

UPSTREAM_TIMEOUT = 4.0
TTL_GRACE = 10  # seconds an address stays open past its answer's TTL
TTL_MAX = 3600
TCP_IDLE = 10.0  # seconds a TCP client may wait between queries
LINK_TTL = 5  # a peer's address changes when it restarts: answers are short-lived


def host_upstream(resolv_conf: str = "/etc/resolv.conf") -> tuple[str, int]:
    """The host's first nameserver."""
    try:
        with open(resolv_conf) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1], 53
    except OSError:
        pass
    return "127.0.0.1", 53


def parse_upstream(text: str) -> tuple[str, int]:
    """`HOST` or `HOST:PORT` (COVE_NETWORK_DNS)."""
    host, sep, port = text.rpartition(":")
    if sep and is_number(port) and "]" not in port:
        return host.strip("[]"), int(port)
    return text, 53


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class SandboxResolver(asyncio.DatagramProtocol):
    """Serves one sandbox; `allow` opens addresses in its set (blocking: run in a thread)."""

    def __init__(
        self,
        client: str,
        upstream: tuple[str, int],
        policy: NetworkPolicy,
        allow: Callable[[list[str], int], None],
    ) -> None:
        self.client = client  # the sandbox's address: nobody else is answered
        self.upstream = upstream
        self.policy = policy
        self.allow = allow
        self.hosts: dict[str, str] = {}  # link peers: lower-case name or id -> address
        self.transport: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio's: trust the protocol.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.client:
            return  # another sandbox's query to this gateway: not ours to answer
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, query: bytes, addr: tuple[str, int]) -> None:
        try:
            out = await self._resolve(query)
        except dnsmsg.DnsError:
            return  # not DNS: no answer
        except Exception:
            log.exception("policy resolver for %s failed", self.client)
            out = dnsmsg.reply(query, dnsmsg.RCODE_SERVFAIL)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)

    async def _resolve(self, query: bytes, tcp: bool = False) -> bytes:
        q = dnsmsg.question(query)
        peer = self.hosts.get(q.name.rstrip("."))
        if peer is not None:
            if q.qtype == dnsmsg.TYPE_A:
                return dnsmsg.answer_a(query, peer, LINK_TTL)
            return dnsmsg.reply(query, 0)  # no AAAA (no IPv6), nothing else either
        p = self.policy
        if p.network_block_all or (
            p.restricted and not domain_allowed(q.name, p.domain_allow_list)
        ):
            return dnsmsg.reply(query, dnsmsg.RCODE_REFUSED)
        if q.qtype == dnsmsg.TYPE_AAAA:
            return dnsmsg.reply(query, 0)
        answer = await (self._forward_tcp(query) if tcp else self._forward(query))
        if p.restricted:
            records = dnsmsg.a_records(answer)
            if records:
                ttl = min(TTL_MAX, min(t for _, t in records)) + TTL_GRACE
                await asyncio.to_thread(self.allow, [a for a, _ in records], ttl)
        return answer

    async def _forward(self, query: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(_Upstream, remote_addr=self.upstream)
        try:
            transport.sendto(query)
            return await asyncio.wait_for(proto.answer, UPSTREAM_TIMEOUT)
        except (TimeoutError, OSError):
            return dnsmsg.reply(query, dnsmsg.RCODE_SERVFAIL)
        finally:
            transport.close()

    async def _forward_tcp(self, query: bytes) -> bytes:
        """Over TCP (RFC 1035 4.2.2: a 2-byte length before each message)."""
        try:
            async with asyncio.timeout(UPSTREAM_TIMEOUT):
                reader, writer = await asyncio.open_connection(*self.upstream)
                try:
                    writer.write(len(query).to_bytes(2, "big") + query)
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    return await reader.readexactly(size)
                finally:
                    writer.close()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return dnsmsg.reply(query, dnsmsg.RCODE_SERVFAIL)

    async def serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One TCP client (clients retry here when a UDP answer came truncated)."""
        try:
            if writer.get_extra_info("peername")[0] != self.client:
                return
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    query = await reader.readexactly(size)
                try:
                    out = await self._resolve(query, tcp=True)
                except dnsmsg.DnsError:
                    return
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass  # the client went, or idled past TCP_IDLE
        finally:
            writer.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
        for task in self._tasks:
            task.cancel()


IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; not in every Python's socket


def check_port_free(gateway: str) -> None:
    """Raise EADDRINUSE now if `serve` could not bind port 53 on `gateway` later.

    The address is not on any interface yet (the pair comes after the
    namespace), so the probe binds with IP_FREEBIND. What holds such a port
    is a stale process of an earlier run, so a free port stays free.
    """
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((gateway, 53))


async def serve(
    gateway: str, client: str, upstream: tuple[str, int], policy: NetworkPolicy,
    allow: Callable[[list[str], int], None],
) -> SandboxResolver:  # fmt: skip
    """UDP and TCP port 53 on `gateway`, for `client` only."""
    # Bound here, not by the loop, so that a failure keeps its errno (EADDRINUSE).
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    resolver: SandboxResolver | None = None
    try:
        udp.bind((gateway, 53))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAITs
        tcp.bind((gateway, 53))
        udp.setblocking(False)
        loop = asyncio.get_running_loop()
        _, resolver = await loop.create_datagram_endpoint(
            lambda: SandboxResolver(client, upstream, policy, allow), sock=udp
        )
        resolver.tcp_server = await asyncio.start_server(resolver.serve_tcp, sock=tcp)
    except BaseException:
        if resolver is not None:
            resolver.close()
        udp.close()
        tcp.close()
        raise
    return resolver
