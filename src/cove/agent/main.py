"""Agent entry point: `python3 -m cove.agent CONFIG.json [--ready-fd N]`.

It listens on the unix socket named in the config, then writes "ready" to the
ready fd (the runtime backend waits on that pipe, not on a poll), and serves
until SIGTERM, when it ends every process it started and exits.
"""

from __future__ import annotations

import sys

if getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", "") == (
    "cove.agent.__main__"
):
    # Only in the agent process itself: it never speaks TLS, but asyncio
    # imports `ssl` (and OpenSSL with it) whenever it can, about 6 ms of every
    # sandbox start and 1 MB of every sandbox's memory. asyncio copes with its
    # absence by design.
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

from cove.agent.config import AgentConfig
from cove.agent.core import Agent
from cove.agent.execute import ExecuteRoutes
from cove.agent.httpserver import HttpServer, Request, Response, Router, json_response
from cove.agent.processes import harden_self, keep_read_buffers
from cove.errors import BadRequest


def build_router(agent: Agent) -> Router:
    router = Router()

    async def health(_: Request) -> Response:
        return json_response({"status": "ok", "sandboxId": agent.config.sandbox_id})

    async def version(_: Request) -> Response:
        return json_response({"version": "cove-agent/0.1"})

    async def work_dir(_: Request) -> Response:
        return json_response({"dir": agent.config.workdir})

    async def identity(req: Request) -> Response:
        # A pre-started (pooled) sandbox learns the id it was adopted under.
        sandbox_id = req.json().get("sandboxId")
        if not isinstance(sandbox_id, str) or not sandbox_id:
            raise BadRequest("field 'sandboxId' must be a non-empty string")
        agent.config.sandbox_id = sandbox_id
        return json_response({"sandboxId": sandbox_id})

    router.add("GET", "/health", health)
    router.add("POST", "/_cove/identity", identity)
    router.add("GET", "/version", version)
    router.add("GET", "/work-dir", work_dir)
    router.add("GET", "/user-home-dir", work_dir)
    ExecuteRoutes(agent).register(router)
    for register in _feature_registrars():
        register(agent, router)
    return router


def _feature_registrars() -> list[Callable[[Agent, Router], None]]:
    """Features that live in their own modules register their routes here.

    Imported plainly: a feature that fails to import is a broken agent, not a
    missing route (the runtime sees the agent exit and reports its log).
    """
    from cove.agent.interpreter import register as interpreter
    from cove.agent.pty import register as pty
    from cove.agent.sessions import register as sessions

    return [sessions, pty, interpreter]


async def serve(config: AgentConfig, ready_fd: int | None) -> None:
    harden_self()
    keep_read_buffers()
    agent = Agent(config)
    server = HttpServer(build_router(agent))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(config.socket)
    listener = await asyncio.start_unix_server(server.serve_connection, config.socket)
    os.chmod(config.socket, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    async with listener:
        await stop.wait()
    await shutdown(agent)


async def shutdown(agent: Agent) -> None:
    """End every user process: SIGTERM, a grace period, then SIGKILL."""
    for hook in agent.shutdown_hooks:
        with contextlib.suppress(Exception):
            await hook()


def parse_args(argv: list[str]) -> tuple[str, int | None]:
    """`CONFIG [--ready-fd N]`; by hand, as argparse alone costs ~1.5 ms of every start."""
    config, ready_fd, rest = None, None, list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--ready-fd" and rest:
            ready_fd = int(rest.pop(0))
        elif arg.startswith("--ready-fd="):
            ready_fd = int(arg.split("=", 1)[1])
        elif config is None and not arg.startswith("-"):
            config = arg
        else:
            raise SystemExit(f"usage: python3 -m cove.agent CONFIG [--ready-fd N]; bad {arg!r}")
    if config is None:
        raise SystemExit("usage: python3 -m cove.agent CONFIG [--ready-fd N]")
    return config, ready_fd


def main() -> None:
    config, ready_fd = parse_args(sys.argv[1:])
    asyncio.run(serve(AgentConfig.load(config), ready_fd))


if __name__ == "__main__":
    main()
