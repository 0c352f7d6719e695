"""The PTY endpoints (listed in the package docstring) over `PtySession`s."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

from cove.agent.core import Agent
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.agent.pty.session import PtySession
from cove.agent.sessions.manager import SESSION_ID, default_cwd
from cove.wire.errors import BadRequest, Conflict, NotFound
from cove.wire.protocol.sessions import PtyCreateRequest, PtyResizeRequest
from cove.wire.websocket import WebSocket

ENVS_TOKEN = "X-Daytona-Pty-Envs~"


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
        if req.command is not None and "\0" in req.command:
            raise BadRequest("field 'command' contains a NUL byte")
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
        session.resize(body.cols, body.rows)
        return json_response(session.info().to_wire())

    async def kill(self, req: Request) -> Response:
        session = self._get(req.params["pid"])
        await self._kill(session)
        return json_response({"message": f"PTY session {session.req.id} killed"})

    async def _kill(self, session: PtySession) -> None:
        if session.child is None:
            self._forget(session)
            return
        await session.terminate()
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
                command=q.get("command") or None,
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
