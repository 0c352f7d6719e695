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
import functools
import importlib
import logging
import os
import signal

from cove.agent.config import AgentConfig
from cove.agent.core import Agent
from cove.agent.exec.routes import ExecuteRoutes
from cove.agent.feature import Feature
from cove.agent.httpserver import HttpServer, Request, Response, Router, json_response
from cove.agent.proc.harden import harden_self, keep_read_buffers, reset_inherited_ignores
from cove.wire.errors import BadRequest

log = logging.getLogger("cove.agent")

# Features built at start: exec answers a sandbox's first request.
EAGER: list[type[Feature]] = [ExecuteRoutes]
# The others are imported and built on the first request under their path
# prefixes: about half of the agent's import time and a MiB of its memory, in
# every sandbox, for features many sandboxes never use. A feature that fails to
# import answers its routes with a 500 naming the error.
DEFERRED: list[tuple[str, str, tuple[str, ...]]] = [
    ("cove.agent.exec.code_run", "CodeRunRoutes", ("/process/code-run",)),
    ("cove.agent.sessions.routes", "SessionRoutes", ("/process/session",)),
    ("cove.agent.pty.routes", "PtyRoutes", ("/process/pty",)),
    ("cove.agent.interpreter.routes", "InterpreterRoutes", ("/process/interpreter",)),
    ("cove.agent.git.routes", "GitRoutes", ("/git",)),
    ("cove.agent.ports.routes", "PortRoutes", ("/port",)),
    ("cove.agent.environment", "EnvRoutes", ("/env",)),
    ("cove.agent.files.routes", "FileRoutes", ("/files",)),
    ("cove.agent.preview.routes", "PreviewRoutes", ("/_cove/tunnel",)),
]
# A sandbox with an entrypoint starts it at once, through the sessions feature.
ENTRYPOINT_FEATURE = "SessionRoutes"


class Basics:
    """Health, version, the working directory, and the identity a pooled sandbox is given."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def register(self, router: Router) -> None:
        router.add("GET", "/health", self.health)
        router.add("POST", "/_cove/identity", self.identity)
        router.add("GET", "/version", self.version)
        router.add("GET", "/work-dir", self.work_dir)
        router.add("GET", "/user-home-dir", self.work_dir)

    async def aclose(self) -> None:
        return None

    async def health(self, _: Request) -> Response:
        return json_response({"status": "ok", "sandboxId": self.agent.config.sandbox_id})

    async def version(self, _: Request) -> Response:
        return json_response({"version": "cove-agent/0.1"})

    async def work_dir(self, _: Request) -> Response:
        return json_response({"dir": self.agent.config.workdir})

    async def identity(self, req: Request) -> Response:
        # A pre-started (pooled) sandbox learns the id it was adopted under.
        sandbox_id = req.json().get("sandboxId")
        if not isinstance(sandbox_id, str) or not sandbox_id:
            raise BadRequest("field 'sandboxId' must be a non-empty string")
        self.agent.config.sandbox_id = sandbox_id
        return json_response({"sandboxId": sandbox_id})


def build(agent: Agent) -> tuple[Router, list[Feature]]:
    """The router and the features built so far (built in the running loop).

    The list grows as deferred features load; shutdown closes what it holds then.
    """
    router = Router()
    features: list[Feature] = [Basics(agent), *(cls(agent) for cls in EAGER)]
    for feature in features:
        feature.register(router)
    for module, name, prefixes in DEFERRED:
        load = functools.partial(_load, agent, router, features, module, name)
        if name == ENTRYPOINT_FEATURE and agent.config.entrypoint:
            load()
        else:
            router.defer(prefixes, load)
    return router, features


def _load(agent: Agent, router: Router, features: list[Feature], module: str, name: str) -> None:
    feature: Feature = getattr(importlib.import_module(module), name)(agent)
    feature.register(router)
    features.append(feature)


async def serve(config: AgentConfig, ready_fd: int | None) -> None:
    harden_self()
    reset_inherited_ignores()
    keep_read_buffers()
    agent = Agent(config)
    router, features = build(agent)
    server = HttpServer(router)
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
    await shutdown(features)


async def shutdown(features: list[Feature]) -> None:
    """End every user process: each feature sends SIGTERM, waits its grace, then SIGKILLs."""
    for feature in reversed(features):
        try:
            await feature.aclose()
        except Exception:
            # Go on with the others: one feature's failure must not leave
            # another's processes running. The log is the agent's own.
            log.exception("agent shutdown: %s failed to close", type(feature).__name__)


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
