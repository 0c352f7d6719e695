"""PTY sessions: interactive shells over WebSocket (wire page §4.4).

Each PTY is a shell started as a session leader with a new pseudo-terminal
as its controlling tty, in its own cgroup. The agent reads the master side
and fans the output out to every connected client (several clients may share
one PTY); any client's input goes to the shell. A client that connects late
first gets the last `SCROLLBACK` bytes. When the shell exits, every client
gets `{"type":"control","status":"exited","exitCode":N}` and a close 1000,
and the PTY is forgotten.

Endpoints (relative to the toolbox root):
  WS     /process/pty/create-connect?id=&cols=&rows=[&cwd=]   create and attach; envs come in
         the `X-Daytona-Pty-Envs~<base64url JSON>` subprotocol token
  WS     /process/pty/{id}/connect        attach to a running PTY
  POST   /process/pty                     {"id", "cwd"?, "envs"?, "cols"?, "rows"?,
                                          "lazyStart"?} → 201 (lazy: starts on first connect)
  GET    /process/pty                     {"sessions": [PtySessionInfo]}
  GET    /process/pty/{id}                PtySessionInfo
  POST   /process/pty/{id}/resize         {"cols", "rows"} (1..1000) → PtySessionInfo
  DELETE /process/pty/{id}                kills the shell and all it started → 200 {"message"}
Errors after the upgrade (unknown id, duplicate id) are sent as
`{"type":"control","status":"error","error":...}`, then a close 4000+HTTP status.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time

from cove.agent.core import DRAIN_AFTER_EXIT, Agent
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.agent.proc.spawn import PtyChild, SpawnSpec, set_winsize, spawn_pty
from cove.agent.sessions.manager import SESSION_ID, default_cwd
from cove.wire.errors import BadRequest, Conflict, NotFound
from cove.wire.protocol.sessions import PtyCreateRequest, PtyResizeRequest, PtySessionInfo
from cove.wire.websocket import ConnectionClosed, WebSocket

SCROLLBACK = 64 * 1024
ENVS_TOKEN = "X-Daytona-Pty-Envs~"
# A client this many output chunks behind is dropped rather than slowing the others.
CLIENT_BACKLOG = 4096


def _control(**fields: object) -> str:
    return json.dumps({"type": "control", **fields})


class PtySession:
    def __init__(self, agent: Agent, req: PtyCreateRequest, cwd: str) -> None:
        self.agent = agent
        self.req = req
        self.cwd = cwd
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.child: PtyChild | None = None
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.scrollback = bytearray()
        self.exit_code: int | None = None
        self.ended = asyncio.Event()
        self._eof = asyncio.Event()

    def info(self) -> PtySessionInfo:
        return PtySessionInfo(
            self.req.id,
            self.child is not None and self.exit_code is None,
            self.req.cols,
            self.req.rows,
            self.created_at,
            self.cwd,
            self.req.envs,
            self.req.lazy_start,
        )

    def start(self) -> None:
        env = self.agent.child_env({"TERM": "xterm-256color", **self.req.envs})
        spec = SpawnSpec([self.agent.shell, "-i"], self.cwd, env)
        group = self.agent.new_group("pty")
        self.child = spawn_pty(self.agent.spawner, spec, group, self.req.cols, self.req.rows)
        asyncio.get_running_loop().add_reader(self.child.master_fd, self._readable)

    def _readable(self) -> None:
        assert self.child is not None
        try:
            data = os.read(self.child.master_fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the terminal is gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.child.master_fd)
            self._eof.set()
            return
        self.scrollback += data
        del self.scrollback[:-SCROLLBACK]
        for queue in list(self.clients):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:  # too slow: drop this client, not the others' output
                self.clients.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    async def run(self) -> None:
        """Wait for the shell to end, then tell every client and let go of the terminal."""
        assert self.child is not None
        self.exit_code = await self.child.exited
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._eof.wait(), DRAIN_AFTER_EXIT)
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.child.master_fd)
        os.close(self.child.master_fd)
        self.agent.tracker.kill(self.child.group)  # whatever it left in the background
        self.agent.release_group(self.child.group)
        self.ended.set()
        for queue in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def write(self, data: bytes) -> None:
        if self.child is None or self.ended.is_set():
            return
        fd, view = self.child.master_fd, memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(fd, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(fd)

    async def attach(self, ws: WebSocket) -> None:
        await ws.send_text(_control(status="connected"))
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_BACKLOG)
        if self.scrollback:
            queue.put_nowait(bytes(self.scrollback))
        if self.ended.is_set():
            queue.put_nowait(None)
        else:
            self.clients.add(queue)

        async def send() -> None:
            while (data := await queue.get()) is not None:
                await ws.send_bytes(data)
            if self.exit_code is not None:
                await ws.send_text(_control(status="exited", exitCode=self.exit_code))

        async def receive() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.write((await ws.recv()).data)

        tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.clients.discard(queue)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class PtyRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.sessions: dict[str, PtySession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, router: Router) -> None:
        router.websocket("/process/pty/create-connect", self.create_connect)
        router.websocket("/process/pty/{pid}/connect", self.connect)
        router.add("POST", "/process/pty", self.create)
        router.add("GET", "/process/pty", self.list_ptys)
        router.add("GET", "/process/pty/{pid}", self.get)
        router.add("POST", "/process/pty/{pid}/resize", self.resize)
        router.add("DELETE", "/process/pty/{pid}", self.kill)

    def _get(self, pid: str) -> PtySession:
        session = self.sessions.get(pid)
        if session is None:
            raise NotFound(f"PTY session {pid!r} not found")
        return session

    def _new(self, req: PtyCreateRequest) -> PtySession:
        if not SESSION_ID.match(req.id):
            raise BadRequest(f"invalid PTY session id {req.id!r}")
        if req.id in self.sessions:
            raise Conflict(f"PTY session {req.id!r} already exists")
        _check_size(req.cols, req.rows)
        cwd = self.agent.resolve_cwd(req.cwd) if req.cwd else default_cwd(self.agent)
        session = PtySession(self.agent, req, cwd)
        self.sessions[req.id] = session
        if not req.lazy_start:
            self._start(session)
        return session

    def _start(self, session: PtySession) -> None:
        try:
            session.start()
        except OSError as exc:
            self.sessions.pop(session.req.id, None)
            raise BadRequest(f"cannot start the PTY shell: {exc}") from None
        task = asyncio.create_task(session.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._forget(session))

    def _forget(self, session: PtySession) -> None:
        if self.sessions.get(session.req.id) is session:
            del self.sessions[session.req.id]

    async def create(self, req: Request) -> Response:
        session = self._new(PtyCreateRequest.from_wire(req.json()))
        return json_response({"sessionId": session.req.id}, 201)

    async def list_ptys(self, _: Request) -> Response:
        return json_response({"sessions": [s.info().to_wire() for s in self.sessions.values()]})

    async def get(self, req: Request) -> Response:
        return json_response(self._get(req.params["pid"]).info().to_wire())

    async def resize(self, req: Request) -> Response:
        session = self._get(req.params["pid"])
        body = PtyResizeRequest.from_wire(req.json())
        _check_size(body.cols, body.rows)
        session.req.cols, session.req.rows = body.cols, body.rows
        if session.child is not None and not session.ended.is_set():
            set_winsize(session.child.master_fd, body.cols, body.rows)
        return json_response(session.info().to_wire())

    async def kill(self, req: Request) -> Response:
        session = self._get(req.params["pid"])
        await self._kill(session)
        return json_response({"message": f"PTY session {session.req.id} killed"})

    async def _kill(self, session: PtySession) -> None:
        if session.child is None:
            self._forget(session)
            return
        self.agent.tracker.kill(session.child.group)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.ended.wait(), 5)

    async def aclose(self) -> None:
        await asyncio.gather(*(self._kill(s) for s in list(self.sessions.values())))

    async def create_connect(self, req: Request, ws: WebSocket) -> None:
        q = req.query
        try:
            body = PtyCreateRequest(
                id=q.get("id", ""),
                cwd=q.get("cwd") or None,
                envs=_envs(req.headers.get("sec-websocket-protocol", "")),
                cols=int(q.get("cols") or 80),
                rows=int(q.get("rows") or 24),
            )
        except ValueError:
            raise BadRequest("query 'cols' and 'rows' must be integers") from None
        # Raised before the socket is used, a refusal is the upgrade's HTTP
        # status (a duplicate id is a 409, as Daytona's SDK expects).
        session = self._new(body)
        await session.attach(ws)

    async def connect(self, req: Request, ws: WebSocket) -> None:
        session = self._get(req.params["pid"])  # unknown: a 404 instead of the upgrade
        if session.child is None:
            self._start(session)  # a lazy PTY starts with its first client
        await session.attach(ws)


def _check_size(cols: int, rows: int) -> None:
    if not (1 <= cols <= 1000 and 1 <= rows <= 1000):
        raise BadRequest("fields 'cols' and 'rows' must be between 1 and 1000")


def _envs(protocols: str) -> dict[str, str]:
    for token in protocols.split(","):
        token = token.strip()
        if token.startswith(ENVS_TOKEN):
            raw = token[len(ENVS_TOKEN) :]
            try:
                envs = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            except ValueError:
                raise BadRequest("the PTY envs subprotocol token is not base64url JSON") from None
            if not isinstance(envs, dict):
                raise BadRequest("the PTY envs must be a JSON object")
            return {str(k): str(v) for k, v in envs.items()}
    return {}
