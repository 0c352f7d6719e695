"""`Upgrade: cove-tunnel` on `/_cove/tunnel/{port}`: relay bytes to `127.0.0.1:port`.

The agent lives in the sandbox's network namespace, so its loopback is the
sandbox's: a web app listening there is reached without publishing anything
on a host port. The agent does not speak the app's protocol; it connects,
answers 101, and copies bytes both ways until the control plane closes. HTTP,
streamed answers and WebSocket upgrades are the control plane's business,
which then talks to the app over this tunnel as over a TCP connection.
Each direction waits for its writer to drain before reading more, so a slow
reader slows its writer and nothing is buffered whole.
"""

from __future__ import annotations

import asyncio
import contextlib

from cove.agent.core import Agent
from cove.agent.httpserver import Request, Router
from cove.agent.ports.routes import parse_port
from cove.wire import http1
from cove.wire.errors import PortUnreachable

PIECE = 256 * 1024  # bytes per read; the drain after each write bounds what is held
CONNECT_TIMEOUT = 5.0
# Loopback addresses tried in order: an app bound to ::1 only (some dev servers
# resolve "localhost" that way) is still found.
LOOPBACK = ("127.0.0.1", "::1")


async def connect_loopback(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    last: OSError | None = None
    for host in LOOPBACK:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=PIECE), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            last = exc if isinstance(exc, OSError) else OSError(f"timed out: {exc}")
    raise PortUnreachable(
        f"nothing is listening on port {port} inside the sandbox ({last}); "
        "start the app first, bound to 127.0.0.1 or 0.0.0.0"
    )


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on (a half-close: the other way may go on)."""
    while data := await reader.read(PIECE):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


class PreviewRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._tunnels: set[asyncio.Task[None]] = set()

    def register(self, router: Router) -> None:
        router.tunnel("/_cove/tunnel/{port}", self.tunnel)

    async def aclose(self) -> None:
        for task in list(self._tunnels):
            task.cancel()

    async def tunnel(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        port = parse_port(req.params["port"])
        app_reader, app_writer = await connect_loopback(port)
        writer.write(http1.tunnel_accepted())
        task = asyncio.current_task()
        assert task is not None
        self._tunnels.add(task)
        upstream = asyncio.ensure_future(pipe(reader, app_writer))
        downstream = asyncio.ensure_future(pipe(app_reader, writer))
        try:
            # The control plane never half-closes: its EOF (or an error either way)
            # means the exchange is over, and the app's connection goes too, even
            # when the app is idle mid-answer (an event stream nobody reads now).
            # The app's EOF is passed on and the control plane then closes.
            both = {upstream, downstream}
            done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if upstream in done or downstream.exception() is not None:
                app_writer.close()
                writer.close()
            await asyncio.wait({upstream, downstream})
        finally:
            self._tunnels.discard(task)
            for t in (upstream, downstream):
                t.cancel()
                if t.done() and not t.cancelled():
                    t.exception()  # retrieved: a peer's reset is how tunnels often end
            with contextlib.suppress(OSError):
                app_writer.close()
