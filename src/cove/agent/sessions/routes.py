"""Sessions: Daytona's `/process/session` API (wire page §4.1, §4.3) and Cove's additions.

Design. A session does not keep one shell alive: that could not give shell
state across commands, a usable session after `exit 3`, and concurrent async
commands all at once. Instead the session holds its state (cwd, exported
environment) as data, each command runs in a fresh `bash` started from it,
and an EXIT trap hands the final state back to be folded in when the command
ends (details and limits in `session_state`). Every command has its own
cgroup; deleting a session sends SIGTERM to everything its commands started,
waits `KILL_GRACE` seconds, then SIGKILLs what is left, setsid'd and
double-forked processes included. The agent reaps every child, so nothing
lingers as a zombie. Logs are on disk (`logs`), capped per command.

Daytona's endpoints (paths relative to the toolbox root):
  POST   /process/session                          {"sessionId"} → 201; bad id 400, duplicate 409
  GET    /process/session                          [Session] (the entrypoint session is not listed)
  GET    /process/session/{sid}                    Session; unknown 404
  DELETE /process/session/{sid}                    204 after every process of the session has ended
  POST   /process/session/{sid}/exec               {"command", "runAsync"?, "suppressInputEcho"?}
         sync → 200 {cmdId, exitCode, output, stdout, stderr}; async → 202 {cmdId}
  GET    /process/session/{sid}/command/{cid}      Command ({id, command, exitCode|null})
  GET    /process/session/{sid}/command/{cid}/logs {output, stdout, stderr}; WebSocket with
         ?follow=true streams them live (framing, escaping and resume: see `logs`)
  POST   /process/session/{sid}/command/{cid}/input {"data"} → 204; 410 once the command has ended;
         a newline is added when "data" does not end with one (as Daytona does)
  GET    /process/session/entrypoint[/logs]        the reserved session running the sandbox's
         entrypoint; exec, input and delete on it are refused (400)

Cove's additions (the official SDK never sends them):
  exec body: "cwd", "envs", "timeout" (seconds) for that command only; a timed-out
    sync command answers 408 PROCESS_EXECUTION_TIMEOUT with its output in the body,
    an async one ends with exit code 137 and "timedOut": true.
  Command and logs: "timedOut", "truncated" (the log cap dropped output).
  POST /process/session/{sid}/command/{cid}/kill        {"signal"?: "TERM"|"INT"|"15"...}
       → 200 Command; without a signal the command's whole tree is SIGKILLed;
       410 when it has ended and left nothing running.
  POST /process/session/{sid}/command/{cid}/stdin/close → 200 Command (EOF after pending input)
  input body: "raw": true sends "data" unchanged, for programs that read characters.
  logs WebSocket: ?offset=N resumes after the first N bytes of the combined output.
Only async commands have a stdin (sync ones read /dev/null; so does the entrypoint).
JSON answers (sync exec, GET logs) carry at most `max_output_bytes` per field and
say `truncated` when cut; the follow stream carries the whole log (up to
`max_log_bytes` per stream kept on disk, and everything written while a
follower is attached: see `logs` and `logfollow`). Logs of a deleted session,
or of a previous agent run, are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from cove.agent.core import Agent
from cove.agent.httpserver import Request, Response, Router, json_response, no_content
from cove.agent.sessions.logs import MARKERS, STDERR, STDOUT, escape
from cove.agent.sessions.manager import (
    ENTRYPOINT,
    Session,
    SessionCommand,
    SessionManager,
    entrypoint_text,
    parse_signal,
)
from cove.wire.errors import BadRequest, NotFound, ProcessTimeout
from cove.wire.protocol.sessions import (
    CommandSignalRequest,
    CreateSessionRequest,
    SessionCommandLogs,
    SessionExecuteRequest,
    SessionExecuteResponse,
    SessionInputRequest,
)
from cove.wire.protocol.sessions import Session as SessionModel
from cove.wire.websocket import ConnectionClosed, WebSocket

FOLLOW_SNDBUF = 2 * 1024 * 1024


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class SessionRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.manager = SessionManager(agent)
        self.entrypoint_cmd: SessionCommand | None = None
        # Built inside the agent's running loop: the entrypoint starts with it.
        self.startup: asyncio.Task[None] | None = None
        if agent.config.entrypoint:
            self.startup = asyncio.get_running_loop().create_task(
                self.start_entrypoint(agent.config.entrypoint)
            )

    async def aclose(self) -> None:
        await self.manager.terminate_all()

    def register(self, router: Router) -> None:
        base = "/process/session"
        cmd = base + "/{sid}/command/{cid}"
        # The fixed entrypoint paths come before the {sid} patterns that would match them.
        router.add("GET", base + "/entrypoint", self.get_entrypoint)
        router.add("GET", base + "/entrypoint/logs", self.entrypoint_logs)
        router.websocket(base + "/entrypoint/logs", self.follow_entrypoint)
        router.add("POST", base, self.create)
        router.add("GET", base, self.list_sessions)
        router.add("GET", base + "/{sid}", self.get)
        router.add("DELETE", base + "/{sid}", self.delete)
        router.add("POST", base + "/{sid}/exec", self.exec)
        router.add("GET", cmd, self.get_command)
        router.add("GET", cmd + "/logs", self.logs)
        router.websocket(cmd + "/logs", self.follow)
        router.add("POST", cmd + "/input", self.input)
        router.add("POST", cmd + "/kill", self.kill)
        router.add("POST", cmd + "/stdin/close", self.close_stdin)

    # -- sessions -------------------------------------------------------------

    def _model(self, session: Session) -> SessionModel:
        return SessionModel(session.id, [c.info() for c in session.commands.values()])

    def _user_session(self, sid: str) -> Session:
        if sid == ENTRYPOINT:
            raise BadRequest(
                "the entrypoint session is managed by the sandbox: read it with "
                "/process/session/entrypoint and its logs; it takes no commands or input"
            )
        return self.manager.get(sid)

    async def create(self, req: Request) -> Response:
        body = CreateSessionRequest.from_wire(req.json())
        return json_response(self._model(self.manager.create(body.session_id)).to_wire(), 201)

    async def list_sessions(self, _: Request) -> Response:
        sessions = [s for s in self.manager.sessions.values() if s.id != ENTRYPOINT]
        return json_response([self._model(s).to_wire() for s in sessions])

    async def get(self, req: Request) -> Response:
        return json_response(self._model(self.manager.get(req.params["sid"])).to_wire())

    async def delete(self, req: Request) -> Response:
        self._user_session(req.params["sid"])
        await self.manager.delete(req.params["sid"])
        return no_content()

    # -- commands ---------------------------------------------------------------

    async def exec(self, req: Request) -> Response:
        session = self._user_session(req.params["sid"])
        body = SessionExecuteRequest.from_wire(req.json())
        if not body.command.strip():
            raise BadRequest("field 'command' must not be empty")
        if "\0" in body.command:
            raise BadRequest("field 'command' contains a NUL byte")
        if body.timeout is not None and body.timeout < 0:
            raise BadRequest("field 'timeout' must be >= 0 (seconds; 0 means no limit)")
        cmd = await self.manager.start(
            session,
            body.command,
            cwd=body.cwd,
            envs=body.envs,
            timeout=body.timeout,
            stdin=body.is_async,
            suppress_echo=bool(body.suppress_input_echo),
        )
        if body.is_async:
            return json_response({"cmdId": cmd.id}, 202)
        await cmd.done.wait()
        logs = _logs(cmd, self.agent.config.max_output_bytes)
        out = SessionExecuteResponse(
            cmd.id, cmd.exit_code, logs.output, logs.stdout, logs.stderr, cmd.timed_out,
            logs.truncated,
        )  # fmt: skip
        if cmd.timed_out:
            raise ProcessTimeout(f"command timed out after {body.timeout:g}s", body=out.to_wire())
        return json_response(out.to_wire())

    def _command(self, req: Request) -> SessionCommand:
        return self.manager.get(req.params["sid"]).command(req.params["cid"])

    async def get_command(self, req: Request) -> Response:
        return json_response(self._command(req).info().to_wire())

    async def logs(self, req: Request) -> Response:
        limit = self.agent.config.max_output_bytes
        return json_response(_logs(self._command(req), limit).to_wire())

    async def follow(self, req: Request, ws: WebSocket) -> None:
        await _follow(self._command(req), req, ws)

    async def input(self, req: Request) -> Response:
        self._user_session(req.params["sid"])
        body = SessionInputRequest.from_wire(req.json())
        self._command(req).send_input(body.payload())
        return no_content()

    async def kill(self, req: Request) -> Response:
        self._user_session(req.params["sid"])
        cmd = self._command(req)
        self.manager.signal(cmd, parse_signal(CommandSignalRequest.from_wire(req.json()).signal))
        return json_response(cmd.info().to_wire())

    async def close_stdin(self, req: Request) -> Response:
        self._user_session(req.params["sid"])
        cmd = self._command(req)
        cmd.close_stdin()
        return json_response(cmd.info().to_wire())

    # -- entrypoint ---------------------------------------------------------------

    async def start_entrypoint(self, argv: list[str]) -> None:
        session = self.manager.create(ENTRYPOINT, reserved_ok=True)
        self.entrypoint_cmd = await self.manager.start(
            session,
            entrypoint_text(argv),
            argv=argv,  # stdin: /dev/null, it takes no input
        )

    async def _entrypoint(self) -> SessionCommand:
        if self.startup is not None:
            await asyncio.shield(self.startup)
        if self.entrypoint_cmd is None:
            raise NotFound("this sandbox has no entrypoint")
        return self.entrypoint_cmd

    async def get_entrypoint(self, _: Request) -> Response:
        await self._entrypoint()
        return json_response(self._model(self.manager.get(ENTRYPOINT)).to_wire())

    async def entrypoint_logs(self, _: Request) -> Response:
        limit = self.agent.config.max_output_bytes
        return json_response(_logs(await self._entrypoint(), limit).to_wire())

    async def follow_entrypoint(self, req: Request, ws: WebSocket) -> None:
        await _follow(await self._entrypoint(), req, ws)


def _logs(cmd: SessionCommand, limit: int) -> SessionCommandLogs:
    """The logs as JSON strings, each at most `limit` bytes (the follow stream has it all)."""
    log = cmd.log
    out, err = log.read_stream("stdout", limit), log.read_stream("stderr", limit)
    cut = log.truncated or log.sizes[STDOUT] > limit or log.sizes[STDERR] > limit
    return SessionCommandLogs(_text(log.combined(limit)), _text(out), _text(err), cut)


async def _follow(cmd: SessionCommand, req: Request, ws: WebSocket) -> None:
    """Everything so far, then live output; the caller closes with 1000 at the end."""
    try:
        offset = int(req.query.get("offset") or 0)
    except ValueError:
        raise BadRequest("query 'offset' must be a number of bytes") from None

    sock = ws.writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        # A frame goes to the kernel in one send instead of being copied into
        # the transport's buffer piece by piece (bounded by net.core.wmem_max).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, FOLLOW_SNDBUF)

    async def pump() -> None:
        # aclosing: a follower that leaves releases its hold on the pipes at once.
        async with contextlib.aclosing(cmd.log.follow(offset)) as chunks:
            async for channel, parts in chunks:
                if any(b"\x01" in p or b"\x02" in p for p in parts):
                    parts = [escape(b"".join(parts))]  # rare: escaping looks across parts
                await ws.send_parts([MARKERS[channel], *parts])

    async def until_client_leaves() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()  # the client sends nothing but pings and its close

    sender = asyncio.create_task(pump())
    watcher = asyncio.create_task(until_client_leaves())
    try:
        await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            task.cancel()
        await asyncio.gather(sender, watcher, return_exceptions=True)
    if sender.done() and not sender.cancelled() and sender.exception() is not None:
        raise sender.exception()  # type: ignore[misc]
