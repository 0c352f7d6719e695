"""The stateful code interpreter: Daytona's wire protocol (§5) plus rich results.

Routes:
  POST   /process/interpreter/context            create (200 + InterpreterContext)
  GET    /process/interpreter/context            {"contexts": [...]}, default excluded
  DELETE /process/interpreter/context/{id}       {"message": "Context deleted"}
  POST   /process/interpreter/context/{id}/interrupt   Cove: {"interrupted", "contextId"}
  WS     /process/interpreter/execute            one JSON frame in, JSON frames out

The context named "default" exists without being created and cannot be
deleted; every context is its own worker process (see `interp_context`).

Frames sent on the WebSocket, in the order things happened:
  {"type": "stdout", "text": str}              Daytona's; chunks are arbitrary
  {"type": "stderr", "text": str}              Daytona's
  {"type": "error", "name": str, "value": str, "traceback": str}
                                               Daytona's; the traceback shows the
                                               user's cells (<cell-N>) only
  {"type": "result", "data": {mime: str}, "isMainResult": bool}
                                               Cove (the official SDK ignores it):
                                               isMainResult=true is the value of a
                                               trailing expression (Jupyter's
                                               execute_result); false is a figure
                                               shown or left open, or display(x).
                                               Mimes: text/plain always, then any of
                                               text/html, image/png (base64),
                                               image/jpeg, image/svg+xml,
                                               text/markdown, text/latex,
                                               application/json.
Then the close: 1000 when the run ended (an exception in user code is an
error frame, not a protocol error); 4008 when `timeout` expired; 4400 for a
bad request and 4404 for an unknown context (reason = the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from cove.agent.core import Agent
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.agent.interpreter.context import Context, Outcome, RunControl
from cove.wire.errors import BadRequest, NotFound
from cove.wire.protocol.interpreter import (
    DEFAULT_CONTEXT_ID,
    INTERPRETER_LANGUAGES,
    ContextList,
    CreateContextRequest,
    InterruptResponse,
    RunCodeRequest,
)
from cove.wire.websocket import ConnectionClosed, WebSocket

DEFAULT_TIMEOUT = 600.0  # Daytona's documented default: 10 minutes
FIRST_FRAME_TIMEOUT = 30.0


class InterpreterRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        # The default context is only an object until its first run starts a worker.
        self.contexts: dict[str, Context] = {
            DEFAULT_CONTEXT_ID: Context(agent, DEFAULT_CONTEXT_ID, agent.config.workdir)
        }

    def register(self, router: Router) -> None:
        router.add("POST", "/process/interpreter/context", self.create)
        router.add("GET", "/process/interpreter/context", self.list)
        router.add("DELETE", "/process/interpreter/context/{id}", self.delete)
        router.add("POST", "/process/interpreter/context/{id}/interrupt", self.interrupt)
        router.websocket("/process/interpreter/execute", self.execute)

    def get(self, context_id: str | None) -> Context:
        ctx = self.contexts.get(context_id or DEFAULT_CONTEXT_ID)
        if ctx is None:
            raise NotFound(f"interpreter context {context_id!r} not found")
        return ctx

    async def create(self, req: Request) -> Response:
        body = CreateContextRequest.from_wire(req.json())
        language = (body.language or "python").lower()
        if language not in INTERPRETER_LANGUAGES:
            raise BadRequest(
                f"field 'language' must be one of {', '.join(INTERPRETER_LANGUAGES)}, "
                f"got {body.language!r}"
            )
        import uuid  # here, not at the top: it pulls in `platform`, and idle agents stay small

        ctx = Context(self.agent, str(uuid.uuid4()), self.agent.resolve_cwd(body.cwd), language)
        # Started now, not lazily: a context that cannot start fails here, and
        # its first run does not pay the start-up.
        await ctx.start()
        self.contexts[ctx.id] = ctx
        return json_response(ctx.info().to_wire())

    async def list(self, _: Request) -> Response:
        contexts = [c.info() for i, c in self.contexts.items() if i != DEFAULT_CONTEXT_ID]
        return json_response(ContextList(contexts).to_wire())

    async def delete(self, req: Request) -> Response:
        context_id = req.params["id"]
        if context_id == DEFAULT_CONTEXT_ID:
            raise BadRequest("the default context cannot be deleted")
        ctx = self.get(context_id)
        del self.contexts[context_id]
        await ctx.close()
        return json_response({"message": "Context deleted"})

    async def interrupt(self, req: Request) -> Response:
        ctx = self.get(req.params["id"])
        return json_response(InterruptResponse(ctx.interrupt(), ctx.id).to_wire())

    async def aclose(self) -> None:
        await asyncio.gather(*(c.close() for c in self.contexts.values()), return_exceptions=True)

    async def execute(self, req: Request, ws: WebSocket) -> None:
        try:
            first = await asyncio.wait_for(ws.recv(), FIRST_FRAME_TIMEOUT)
        except TimeoutError:
            raise BadRequest("no request frame received") from None
        except ConnectionClosed:
            return  # the client left before asking anything
        try:
            data = json.loads(first.data)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise BadRequest("the request frame is not valid JSON") from None
        body = RunCodeRequest.from_wire(data)
        if body.timeout is not None and body.timeout < 0:
            raise BadRequest("field 'timeout' must be >= 0 (seconds; 0 means no limit)")
        timeout = DEFAULT_TIMEOUT if body.timeout is None else (body.timeout or None)
        self.agent.child_env(body.envs)  # rejects bad names and values with a 400
        ctx = self.get(body.context_id)

        outbox = Outbox(ws, ctx.throttle)
        sender = asyncio.create_task(outbox.run())
        control = RunControl()
        watcher = asyncio.create_task(_watch_disconnect(ws, control))
        try:
            job = {"code": body.code, "envs": body.envs, "stdin": body.stdin}
            outcome = await ctx.run(job, timeout, outbox.put, control)
        finally:
            watcher.cancel()
            outbox.close()
            await sender
        if outcome is Outcome.TIMEOUT:
            await ws.close(4008, f"execution timed out after {timeout:g}s")


class Outbox:
    """Frames for one client, sent in order, with backpressure on the worker.

    Past HIGH bytes waiting, `throttle(True)` stops reading the worker's
    output (the worker then blocks in write, as with a slow terminal); below
    LOW it resumes. Once the client is gone the rest is dropped.
    """

    HIGH = 4 * 1024 * 1024
    LOW = 1024 * 1024

    def __init__(self, ws: WebSocket, throttle: Callable[[bool], None]) -> None:
        self.ws = ws
        self.throttle = throttle
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.pending = 0
        self.slow = False

    def put(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame, ensure_ascii=False)
        self.pending += len(text)
        self.queue.put_nowait(text)
        if not self.slow and self.pending > self.HIGH:
            self.slow = True
            self.throttle(True)

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def run(self) -> None:
        broken = False
        while (text := await self.queue.get()) is not None:
            if not broken:
                try:
                    await self.ws.send_text(text)
                except (ConnectionError, RuntimeError):
                    broken = True
            self.pending -= len(text)
            if self.slow and self.pending < self.LOW:
                self.slow = False
                self.throttle(False)


async def _watch_disconnect(ws: WebSocket, control: RunControl) -> None:
    """A client that goes away mid-run interrupts its run (it must not block the next)."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()  # the client sends nothing more; this returns on close
    control.stop(Outcome.DISCONNECTED)
