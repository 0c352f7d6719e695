"""Uploads and downloads, streamed: nothing holds a whole file in memory.

Upload (`POST /files/bulk-upload`, Daytona's shape): multipart/form-data with
`files[i].path` (the destination) before `files[i].file` (the bytes). Each
file is written to a hidden temporary sibling of its destination; only when
the whole body has arrived are they all renamed into place, so a client gone
mid-body (or a full disk) leaves no half-written file and no partial batch.

Download: `GET /files/download?path=` answers the raw bytes (one `Range`
honoured); `POST /files/bulk-download` answers multipart/form-data, a `file`
part per path or an `error` part (JSON, Daytona's shape) for a path that
cannot be read. File bytes go out by `sendfile`, never through the agent.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import BinaryIO

from cove.agent.files import multipart
from cove.agent.files.paths import open_regular, os_error, resolve
from cove.agent.httpbody import Body, BodyWriter
from cove.agent.httpserver import Response
from cove.wire import http1
from cove.wire.errors import SOURCE_AGENT, BadRequest, CoveError, InsufficientStorage
from cove.wire.protocol.files import UploadedFile, UploadFilesResponse

FIELD = re.compile(r"files\[(\d{1,6})\]\.(path|file)")
MAX_PATH_FIELD = 64 * 1024
NEW_FILE_MODE = 0o644


@dataclass
class Staged:
    tmp: str
    final: str
    size: int = 0


@dataclass
class Upload:
    """One bulk upload: files staged so far, directories it had to create."""

    workdir: str
    staged: list[Staged] = field(default_factory=list)
    made_dirs: list[str] = field(default_factory=list)
    space_checked: bool = False

    async def receive(self, body: Body, content_type: str) -> UploadFilesResponse:
        reader = multipart.MultipartReader(body, multipart.boundary_of(content_type))
        destinations: dict[str, str] = {}
        try:
            while (part := await reader.next_part()) is not None:
                m = FIELD.fullmatch(part.name)
                if m is None:
                    continue  # an unknown field: skipped, as form parsers do
                index, kind = m.groups()
                if kind == "path":
                    raw = await reader.read_all(MAX_PATH_FIELD)
                    destinations[index] = raw.decode("utf-8", "surrogateescape")
                    continue
                target = destinations.get(index) or part.filename
                if not target:
                    raise BadRequest(f"files[{index}].file comes without files[{index}].path")
                await self._write(
                    reader, resolve(self.workdir, target, f"files[{index}].path"), body
                )
            self._commit()
        except BaseException:
            self.abort()
            raise
        return UploadFilesResponse([UploadedFile(s.final, s.size) for s in self.staged])

    def _parent(self, path: str) -> str:
        parent = os.path.dirname(path)
        missing: list[str] = []
        probe = parent
        while probe and not os.path.isdir(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise BadRequest(f"not a directory: {directory}") from None
                continue
            except OSError as exc:
                raise os_error(exc, directory) from None
            self.made_dirs.append(directory)
        return parent

    def _check_space(self, parent: str, body: Body) -> None:
        """Refuse a body the disk cannot hold before writing any of it (when its size is known)."""
        self.space_checked = True
        if body.length is None:
            return  # chunked: a full disk shows as ENOSPC while writing
        st = os.statvfs(parent)
        free = st.f_bavail * st.f_frsize
        if body.length - body.received > free:
            raise InsufficientStorage(
                f"the upload is {body.length} bytes but the sandbox has {free} bytes free"
            )

    async def _write(self, reader: multipart.MultipartReader, final: str, body: Body) -> None:
        if os.path.isdir(final):
            raise BadRequest(f"is a directory: {final}")
        parent = self._parent(final)
        if not self.space_checked:
            self._check_space(parent, body)
        try:
            mode = stat.S_IMODE(os.stat(final).st_mode)  # overwriting keeps the mode
        except OSError:
            mode = NEW_FILE_MODE
        name = f".{os.path.basename(final)[:200]}.cove-upload-{os.urandom(4).hex()}"
        staged = Staged(os.path.join(parent, name), final)
        try:
            fd = os.open(staged.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise os_error(exc, final) from None
        self.staged.append(staged)
        try:
            while data := await reader.read():
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                staged.size += len(data)
            os.fchmod(fd, mode)  # exactly the mode, whatever the umask
        except OSError as exc:
            raise os_error(exc, final) from None
        finally:
            os.close(fd)

    def _commit(self) -> None:
        for s in self.staged:
            try:
                os.replace(s.tmp, s.final)
            except OSError as exc:
                raise os_error(exc, s.final) from None

    def abort(self) -> None:
        for s in self.staged:
            try:
                os.unlink(s.tmp)
            except FileNotFoundError:
                continue  # already renamed into place by a commit that then failed
        for directory in reversed(self.made_dirs):
            try:
                os.rmdir(directory)
            except OSError:
                break  # not empty any more: someone else wrote there meanwhile


def _regular_size(path: str) -> int:
    """The size of a regular file (a FIFO or device would block or never end)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise os_error(exc, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise BadRequest(f"is a directory: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise BadRequest(f"not a regular file: {path}")
    return st.st_size


def _open_regular(path: str) -> tuple[BinaryIO, int]:
    f = open_regular(path)  # closed by the streaming callback
    return f, os.fstat(f.fileno()).st_size


def download(path: str, range_header: str | None) -> Response:
    """The file's bytes (or the one range asked for), streamed by `sendfile`."""
    f, size = _open_regular(path)
    start, end, status = 0, size, 200
    headers = [("Accept-Ranges", "bytes")]
    if range_header:
        try:
            span = http1.parse_range(range_header, size)
        except http1.RangeError as exc:
            f.close()
            raise RangeNotSatisfiable(str(exc), size) from None
        if span is not None:
            start, end, status = span[0], span[1], 206
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    name = os.path.basename(path)
    headers.append(
        ("Content-Disposition", multipart.disposition("file", name)[len("form-data; ") :])
    )

    async def send(out: BodyWriter) -> None:
        with f:
            await out.sendfile(f, start, end - start)

    return Response(status, content_type="application/octet-stream", headers=headers,
                    stream=send, length=end - start)  # fmt: skip


class RangeNotSatisfiable(CoveError):
    status = 416
    code = "RANGE_NOT_SATISFIABLE"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, body={"size": size})


def _error_part(err: CoveError) -> bytes:
    """Daytona's error part: the envelope's fields, so the SDK raises the matching class."""
    return json.dumps(
        {"message": err.message, "statusCode": err.status, "code": err.code, "source": SOURCE_AGENT}
    ).encode()


def bulk_download(workdir: str, paths: list[str]) -> Response:
    """multipart/form-data: per path a `file` part or an `error` part, in order.

    Sizes are taken up front so the answer has a Content-Length; each file is
    opened only while it is sent (a thousand paths must not hold a thousand fds).
    """
    boundary = "cove-" + os.urandom(16).hex()
    plan: list[tuple[str, str, int | bytes]] = []  # (asked, resolved, size or error body)
    total = len(multipart.closing(boundary))
    for asked in paths:
        try:
            path = resolve(workdir, asked)
            size = _regular_size(path)
            plan.append((asked, path, size))
            kind, ctype = "file", "application/octet-stream"
        except CoveError as err:
            payload = _error_part(err)
            plan.append((asked, "", payload))
            size, kind, ctype = len(payload), "error", "application/json"
        total += len(multipart.part_head(boundary, kind, asked, ctype, size)) + size + 2

    async def send(out: BodyWriter) -> None:
        for asked, path, what in plan:
            if isinstance(what, bytes):
                head = multipart.part_head(boundary, "error", asked, "application/json", len(what))
                await out.write(head + what + b"\r\n")
                continue
            head = multipart.part_head(boundary, "file", asked, "application/octet-stream", what)
            await out.write(head)
            try:  # a FIFO planted meanwhile must not block the agent's loop
                f = open_regular(path)
            except CoveError as err:
                raise ConnectionAbortedError(f"{path} changed mid-download: {err}") from None
            with f:
                sent = await out.sendfile(f, 0, what)
            if sent != what:
                raise ConnectionAbortedError(f"{path} shrank mid-download")
            await out.write(b"\r\n")
        await out.write(multipart.closing(boundary))

    ctype = f"multipart/form-data; boundary={boundary}"
    return Response(200, content_type=ctype, stream=send, length=total)
