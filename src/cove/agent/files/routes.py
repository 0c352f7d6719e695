"""`/files/...`: the routes of Daytona's file system API, in the agent.

Query parameters and bodies are checked here; the work is in `ops`, `search`
and `transfer`. Tree walks run in a worker thread so one big search does not
stall every other call to this sandbox.
"""

from __future__ import annotations

import asyncio

from cove.agent.core import Agent
from cove.agent.files import ops, search, transfer
from cove.agent.files.paths import parse_bool, parse_mode, resolve
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.wire.errors import BadRequest
from cove.wire.numbers import is_number
from cove.wire.protocol.files import FilesDownloadRequest, ReplaceRequest


def _empty(status: int) -> Response:
    return Response(status, b"")


def _flagged(response: Response, budget: search.Budget) -> Response:
    if budget.truncated:
        response.headers.append(("X-Cove-Truncated", f"time: over {search.SEARCH_SECONDS:g} s"))
    return response


class FileRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def register(self, router: Router) -> None:
        router.add("GET", "/files", self.list_files)
        router.add("DELETE", "/files", self.delete)
        router.add("GET", "/files/info", self.info)
        router.add("POST", "/files/folder", self.folder)
        router.add("POST", "/files/move", self.move)
        router.add("POST", "/files/permissions", self.permissions)
        router.add("GET", "/files/find", self.find)
        router.add("GET", "/files/search", self.search)
        router.add("POST", "/files/replace", self.replace)
        router.streamed("POST", "/files/bulk-upload", self.upload)
        router.add("GET", "/files/download", self.download)
        router.add("POST", "/files/bulk-download", self.bulk_download)

    async def aclose(self) -> None:
        return None

    def _path(self, req: Request, name: str = "path") -> str:
        return resolve(self.agent.config.workdir, req.query.get(name), name)

    async def list_files(self, req: Request) -> Response:
        raw_depth = req.query.get("depth") or "1"
        if not is_number(raw_depth):
            raise BadRequest(f"query parameter 'depth' must be a whole number, got {raw_depth!r}")
        entries = await asyncio.to_thread(ops.list_dir, self._path(req), int(raw_depth))
        return json_response([e.to_wire() for e in entries])

    async def info(self, req: Request) -> Response:
        return json_response(ops.get_info(self._path(req)).to_wire())

    async def delete(self, req: Request) -> Response:
        recursive = parse_bool(req.query.get("recursive"), "recursive")
        await asyncio.to_thread(ops.delete, self._path(req), recursive)
        return _empty(204)

    async def folder(self, req: Request) -> Response:
        mode = parse_mode(req.query.get("mode") or "755")
        ops.make_dir(self._path(req), mode)
        return _empty(201)

    async def move(self, req: Request) -> Response:
        source, destination = self._path(req, "source"), self._path(req, "destination")
        await asyncio.to_thread(ops.move, source, destination)
        return _empty(200)

    async def permissions(self, req: Request) -> Response:
        raw_mode, owner, group = (req.query.get(k) for k in ("mode", "owner", "group"))
        if not (raw_mode or owner or group):
            raise BadRequest("give at least one of 'mode', 'owner' or 'group'")
        mode = parse_mode(raw_mode) if raw_mode else None
        ops.set_permissions(self._path(req), mode, owner, group)
        return _empty(200)

    async def find(self, req: Request) -> Response:
        budget = search.Budget()
        pattern = req.query.get("pattern", "")
        matches = await asyncio.to_thread(search.find, self._path(req), pattern, budget)
        return _flagged(json_response([m.to_wire() for m in matches]), budget)

    async def search(self, req: Request) -> Response:
        budget = search.Budget()
        pattern = req.query.get("pattern", "")
        found = await asyncio.to_thread(search.search, self._path(req), pattern, budget)
        return _flagged(json_response({"files": found}), budget)

    async def replace(self, req: Request) -> Response:
        body = ReplaceRequest.from_wire(req.json())
        workdir = self.agent.config.workdir
        paths = [resolve(workdir, p, f"files[{i}]") for i, p in enumerate(body.files)]
        results = await asyncio.to_thread(search.replace, paths, body.pattern, body.new_value)
        return json_response([r.to_wire() for r in results])

    async def upload(self, req: Request) -> Response:
        assert req.stream is not None  # a streamed route
        upload = transfer.Upload(self.agent.config.workdir)
        answer = await upload.receive(req.stream, req.headers.get("content-type", ""))
        return json_response(answer.to_wire())

    async def download(self, req: Request) -> Response:
        return transfer.download(self._path(req), req.headers.get("range"))

    async def bulk_download(self, req: Request) -> Response:
        body = FilesDownloadRequest.from_wire(req.json())
        if not body.paths:
            raise BadRequest("field 'paths' must name at least one file")
        return transfer.bulk_download(self.agent.config.workdir, body.paths)
