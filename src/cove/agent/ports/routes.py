"""Listening ports: `GET /port` and `GET /port/{port}/in-use`.

The agent lives in the sandbox's network namespace, so `/proc/net/tcp` and
`tcp6` list exactly the sandbox's sockets; a port is in use when a TCP socket
listens on it (any address). Reading the tables is cheaper than probing with
connects, and sees a listener on any address, not only loopback.
"""

from __future__ import annotations

from cove.agent.core import Agent
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.wire.errors import BadRequest
from cove.wire.numbers import is_number
from cove.wire.protocol.git import IsPortInUseResponse, PortList

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN = "0A"  # TCP_LISTEN in the kernel's `st` column


def listening_ports(tables: tuple[str, ...] = TABLES) -> list[int]:
    ports: set[int] = set()
    for table in tables:
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]  # the first line is the header
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        ports.update(parse_listeners(lines))
    return sorted(ports)


def parse_listeners(lines: list[str]) -> set[int]:
    """Ports of the LISTEN rows: `sl local_address rem_address st ...`, address `HEX:PORT`."""
    ports = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == LISTEN:
            ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


def parse_port(text: str) -> int:
    if not is_number(text) or not 1 <= int(text) <= 65535:
        raise BadRequest(f"port must be a number from 1 to 65535, got {text!r}")
    return int(text)


class PortRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def register(self, router: Router) -> None:
        router.add("GET", "/port", self.ports)
        router.add("GET", "/port/{port}/in-use", self.in_use)

    async def aclose(self) -> None:
        return None

    async def ports(self, _: Request) -> Response:
        return json_response(PortList(listening_ports()).to_wire())

    async def in_use(self, req: Request) -> Response:
        port = parse_port(req.params["port"])
        return json_response(IsPortInUseResponse(port in listening_ports()).to_wire())
