"""The harness's view of a running Cove server: plain HTTP and WebSocket calls.

Requests go straight over httpx (keep-alive, loopback) rather than through
an SDK, so that the figures measure the server and not a client's model
validation. The wire shapes are the official SDK's (wire page §3, §4, §5).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

from cove.wire.websocket import WebSocket, new_key
from tests.serverproc import ServerProcess

# The bench creates more sandboxes, CPU and memory under its one key than the
# per-key defaults allow (a 100-create burst, 200 idle ones, 1,000 opt-in): its
# servers lift them, since the quotas are not what it measures.
NO_QUOTAS = {
    "COVE_QUOTA_SANDBOXES": "100000",
    "COVE_QUOTA_CPU": "100000",
    "COVE_QUOTA_MEMORY_GIB": "100000",
    "COVE_QUOTA_DISK_GIB": "1000000",
}

CREATE_BODY: dict[str, Any] = {
    "env": {},
    "labels": {"code-toolbox-language": "python"},
    "volumes": [],
}


class BenchError(RuntimeError):
    pass


def _check(r: httpx.Response, what: str) -> httpx.Response:
    if r.status_code >= 300:
        raise BenchError(f"{what}: HTTP {r.status_code} {r.text[:300]}")
    return r


@dataclass
class Cove:
    server: ServerProcess

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.server.key}"}
        self.http = httpx.Client(base_url=self.server.url, headers=self.headers, timeout=120)

    def close(self) -> None:
        self.http.close()

    def aclient(self, connections: int = 100) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            base_url=self.server.url, headers=self.headers, timeout=120, limits=limits
        )

    def ws_url(self, sid: str, path: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/toolbox/{sid}{path}"

    # -- lifecycle -------------------------------------------------------------

    def create(self) -> str:
        r = _check(self.http.post("/api/sandbox", json=CREATE_BODY), "create")
        body = r.json()
        if body.get("state") != "started":
            raise BenchError(f"create: sandbox is {body.get('state')}: {body.get('errorReason')}")
        return str(body["id"])

    def delete(self, sid: str) -> None:
        _check(self.http.delete(f"/api/sandbox/{sid}"), "delete")

    def list_ids(self) -> list[str]:
        return [i["id"] for i in _check(self.http.get("/api/sandbox"), "list").json()["items"]]

    # -- toolbox -----------------------------------------------------------------

    def post(self, sid: str, path: str, body: dict[str, Any]) -> Any:
        r = _check(self.http.post(f"/toolbox/{sid}{path}", json=body), path)
        return r.json() if r.content else None

    def exec(self, sid: str, command: str) -> dict[str, Any]:
        out: dict[str, Any] = self.post(sid, "/process/execute", {"command": command})
        return out

    def code_run(self, sid: str, code: str) -> dict[str, Any]:
        out: dict[str, Any] = self.post(
            sid, "/process/code-run", {"code": code, "language": "python"}
        )
        return out


async def acreate(client: httpx.AsyncClient) -> str:
    r = _check(await client.post("/api/sandbox", json=CREATE_BODY), "create")
    body = r.json()
    if body.get("state") != "started":
        raise BenchError(f"create: sandbox is {body.get('state')}: {body.get('errorReason')}")
    return str(body["id"])


async def aexec(client: httpx.AsyncClient, sid: str, command: str) -> dict[str, Any]:
    r = _check(
        await client.post(f"/toolbox/{sid}/process/execute", json={"command": command}), "exec"
    )
    out: dict[str, Any] = json.loads(r.content)
    return out


class RawConnection:
    """One keep-alive HTTP/1.1 connection driven by hand, for load generation.

    httpx's pool spends milliseconds of CPU per request once hundreds of
    requests share it, on the same two cores as the server: the load
    generator then measured itself. This does the minimum per request.
    """

    def __init__(self, port: int, key: str, unix: str | None = None) -> None:
        self.port = port
        self.unix = unix  # an agent's own socket instead of the server's port
        self.auth = f"Authorization: Bearer {key}\r\n" if key else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None and self.unix:
            self.reader, self.writer = await asyncio.open_unix_connection(self.unix)
        elif self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def open_ws(port: int, key: str, path: str) -> WebSocket:
    """A client WebSocket to the server, handshaken by hand (RFC 6455 §4.1).

    The same frames an SDK sends, without a client library's threads or
    per-call setup, so that the round trip measured is the server's.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {new_key()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    if " 101 " not in head.split("\r\n", 1)[0]:
        writer.close()
        raise BenchError(f"websocket {path}: {head.splitlines()[0]}")
    return WebSocket(reader, writer, client=True)
