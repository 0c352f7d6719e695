"""sftp (and the scp of OpenSSH 9, which speaks sftp) over the agent's files API.

asyncssh decodes the SFTP protocol and calls this server's methods; each
becomes a `/files/...` call to the sandbox's agent, which runs it inside the
sandbox as its user: no path the client sends is ever opened on the host.

- Reads are ranged downloads (`Range: bytes=...`), so a large file is read
  in the client's pieces.
- Writes are staged on the server (in memory up to `SPOOL_IN_MEMORY`, then in
  a temporary file of the server's own, no larger than the sandbox's disk)
  and uploaded when the client closes the file: the agent's upload writes a
  whole file and renames it into place, so a transfer cut short leaves the
  old file as it was. A file opened for writing without truncation is
  fetched first, so writing into it at an offset keeps the rest.
- stat is the agent's `lstat` (a symbolic link is followed one step);
  permissions can be set, times and owners are not (accepted, ignored).
"""

from __future__ import annotations

import contextlib
import datetime
import posixpath
import secrets
import stat
import tempfile
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import asyncssh

from cove.server.agentclient import AgentUnreachable
from cove.server.agentws import refusal as _refusal
from cove.server.ssh.channel import AgentLink
from cove.settings import GiB
from cove.wire.errors import CoveError
from cove.wire.protocol import FileInfo

if TYPE_CHECKING:
    from cove.server.records import SandboxRecord
    from cove.server.sandboxes import SandboxService
    from cove.server.toolbox import AgentClients


SPOOL_IN_MEMORY = 1024 * 1024
UPLOAD_PIECE = 256 * 1024
FXF_READ, FXF_WRITE, FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_EXCL = 1, 2, 4, 8, 16, 32


def _sftp_error(err: CoveError | AgentUnreachable) -> asyncssh.SFTPError:
    if isinstance(err, AgentUnreachable):
        return asyncssh.SFTPFailure(f"the sandbox's agent did not answer: {err}")
    if err.status == 404:
        return asyncssh.SFTPNoSuchFile(err.message)
    if err.status in (401, 403):
        return asyncssh.SFTPPermissionDenied(err.message)
    return asyncssh.SFTPFailure(err.message)


def _attrs(info: FileInfo) -> asyncssh.SFTPAttrs:
    kind = {"d": stat.S_IFDIR, "L": stat.S_IFLNK}.get(info.mode[:1], stat.S_IFREG)
    mtime = None
    if info.modified_at:
        with contextlib.suppress(ValueError):
            when = datetime.datetime.fromisoformat(info.modified_at.replace("Z", "+00:00"))
            mtime = int(when.timestamp())
    return asyncssh.SFTPAttrs(
        type=asyncssh.FILEXFER_TYPE_DIRECTORY
        if kind == stat.S_IFDIR
        else asyncssh.FILEXFER_TYPE_SYMLINK
        if kind == stat.S_IFLNK
        else asyncssh.FILEXFER_TYPE_REGULAR,
        size=info.size,
        permissions=kind | (int(info.permissions, 8) & 0o7777),
        atime=mtime,
        mtime=mtime,
        # Owner names need SFTPv4, which OpenSSH does not speak; uid/gid are the
        # sandbox's own numbering, which means nothing to the client.
    )


class _File:
    """An open file: its path in the sandbox, and its staged content once written."""

    def __init__(self, path: str, flags: int) -> None:
        self.path = path
        self.flags = flags
        self.staged: IO[bytes] | None = None
        self.dirty = False
        self.mode: int | None = None  # permissions set while open, applied after upload


class SandboxSftp(asyncssh.SFTPServer):
    def __init__(
        self,
        chan: asyncssh.SSHServerChannel[bytes],
        service: SandboxService,
        clients: AgentClients,
        record: SandboxRecord,
    ) -> None:
        super().__init__(chan)
        self.service = service
        self.clients = clients
        self.record = record
        self.workdir: str | None = None
        self.max_file = record.spec.disk * GiB
        self._held = contextlib.ExitStack()
        self._held.enter_context(service.connection_open(record.id))

    # -- plumbing -------------------------------------------------------------------

    def _agent(self) -> AgentLink:
        try:
            socket = self.service.agent_endpoint(self.record.owner, self.record.id)
        except CoveError as err:
            raise _sftp_error(err) from None
        return AgentLink(socket, self.clients.get(socket, self.record.id))

    async def _call(self, method: str, route: str, **query: str) -> Any:
        target = f"{route}?{urlencode(query)}" if query else route
        try:
            return await self._agent().call(method, target)
        except (CoveError, AgentUnreachable) as err:
            raise _sftp_error(err) from None

    async def _path(self, raw: bytes) -> str:
        """An absolute, normalised path in the sandbox (relative ones from its workdir)."""
        path = raw.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            if self.workdir is None:
                self.workdir = str((await self._call("GET", "/work-dir"))["dir"])
            path = posixpath.join(self.workdir, path)
        return posixpath.normpath(path).replace("//", "/")

    async def _info(self, path: str) -> FileInfo:
        return FileInfo.from_wire(await self._call("GET", "/files/info", path=path))

    async def _download(self, path: str, first: int, last: int | None) -> bytes:
        """Bytes `first`..`last` (inclusive; None: to the end); b"" past the end."""
        span = f"bytes={first}-" + ("" if last is None else str(last))
        target = "/files/download?" + urlencode({"path": path})
        agent = self._agent()
        try:
            resp = await agent.pool.request("GET", target, {"range": span})
        except AgentUnreachable as err:
            raise _sftp_error(err) from None
        if resp.status == 416:
            return b""
        if resp.status >= 400:
            raise _sftp_error(_refusal(resp.status, resp.body))
        return (
            resp.body
            if resp.status == 206
            else resp.body[first : None if last is None else last + 1]
        )

    async def _upload(self, path: str, staged: IO[bytes]) -> None:
        boundary = "cove-sftp-" + secrets.token_hex(12)
        size = staged.seek(0, 2)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files[0].path"\r\n\r\n'
            f"{path}\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="files[0].file"; filename="upload"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode("utf-8", "surrogateescape")
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            yield head
            staged.seek(0)
            while piece := staged.read(UPLOAD_PIECE):
                yield piece
            yield tail

        content_type = f"multipart/form-data; boundary={boundary}"
        try:
            answer = await self._agent().pool.stream(
                "POST",
                "/files/bulk-upload",
                {"content-type": content_type},
                body(),
                len(head) + size + len(tail),
            )
            data = b"".join([piece async for piece in answer.chunks()])
        except AgentUnreachable as err:
            raise _sftp_error(err) from None
        if answer.status >= 400:
            raise _sftp_error(_refusal(answer.status, data))

    # -- paths and attributes ---------------------------------------------------------

    async def realpath(self, path: bytes) -> bytes:
        return (await self._path(path or b".")).encode("utf-8", "surrogateescape")

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return _attrs(await self._info(await self._path(path)))

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        where = await self._path(path)
        info = await self._info(where)
        if info.symlink_target:  # followed one step
            target = posixpath.join(posixpath.dirname(where), info.symlink_target)
            info = await self._info(posixpath.normpath(target))
        return _attrs(info)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        if attrs.permissions is not None:
            mode = f"{attrs.permissions & 0o7777:o}"
            await self._call("POST", "/files/permissions", path=await self._path(path), mode=mode)

    async def readlink(self, path: bytes) -> bytes:
        info = await self._info(await self._path(path))
        if not info.symlink_target:
            raise asyncssh.SFTPInvalidParameter(f"{info.path or info.name} is not a symbolic link")
        return info.symlink_target.encode("utf-8", "surrogateescape")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("symbolic links cannot be made over sftp here")

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        where = await self._path(path)
        listing = await self._call("GET", "/files", path=where)
        here = _attrs(await self._info(where))
        yield asyncssh.SFTPName(b".", attrs=here)
        yield asyncssh.SFTPName(b"..", attrs=here)
        for item in cast(list[Any], listing):
            info = FileInfo.from_wire(item)
            yield asyncssh.SFTPName(
                info.name.encode("utf-8", "surrogateescape"), attrs=_attrs(info)
            )

    # -- changes --------------------------------------------------------------------

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        mode = f"{(attrs.permissions or 0o755) & 0o7777:o}"
        await self._call("POST", "/files/folder", path=await self._path(path), mode=mode)

    async def rmdir(self, path: bytes) -> None:
        await self._call("DELETE", "/files", path=await self._path(path))

    async def remove(self, path: bytes) -> None:
        await self._call("DELETE", "/files", path=await self._path(path))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        source, destination = await self._path(oldpath), await self._path(newpath)
        await self._call("POST", "/files/move", source=source, destination=destination)

    posix_rename = rename

    # -- files ----------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> _File:
        f = _File(await self._path(path), pflags)
        exists = True
        try:
            info = await self._info(f.path)
        except asyncssh.SFTPNoSuchFile:
            exists = False
        if exists and info.is_dir:
            raise asyncssh.SFTPFileIsADirectory(f"{f.path} is a directory")
        if not pflags & FXF_WRITE:
            if not exists:
                raise asyncssh.SFTPNoSuchFile(f"{f.path} does not exist")
            return f
        if exists and pflags & FXF_CREAT and pflags & FXF_EXCL:
            raise asyncssh.SFTPFileAlreadyExists(f"{f.path} already exists")
        if not exists and not pflags & FXF_CREAT:
            raise asyncssh.SFTPNoSuchFile(f"{f.path} does not exist")
        # Closed in `close`: an open SFTP handle outlives any `with` here.
        f.staged = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115
        if exists and not pflags & FXF_TRUNC:
            await self._fetch_into(f)  # written into at offsets: keep the rest
        f.dirty = not exists or bool(pflags & FXF_TRUNC)
        if attrs.permissions is not None:
            f.mode = attrs.permissions & 0o7777
        return f

    async def _fetch_into(self, f: _File) -> None:
        assert f.staged is not None
        offset = 0
        while piece := await self._download(f.path, offset, offset + UPLOAD_PIECE - 1):
            f.staged.write(piece)
            offset += len(piece)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        f = cast(_File, file_obj)
        if f.staged is not None:
            f.staged.seek(offset)
            return f.staged.read(size)
        return await self._download(f.path, offset, offset + size - 1) if size else b""

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        f = cast(_File, file_obj)
        if f.staged is None:
            raise asyncssh.SFTPPermissionDenied(f"{f.path} was not opened for writing")
        if f.flags & FXF_APPEND:
            offset = f.staged.seek(0, 2)
        if offset + len(data) > self.max_file:  # staged on the host: bounded by the sandbox
            raise asyncssh.SFTPFailure(
                f"{f.path} would exceed the sandbox's disk ({self.max_file} bytes)"
            )
        f.staged.seek(offset)
        f.staged.write(data)
        f.dirty = True
        return len(data)

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        f = cast(_File, file_obj)
        if f.staged is not None and f.dirty:
            return asyncssh.SFTPAttrs(
                type=asyncssh.FILEXFER_TYPE_REGULAR,
                size=f.staged.seek(0, 2),
                permissions=stat.S_IFREG | (f.mode if f.mode is not None else 0o644),
            )
        return await self.stat(f.path.encode("utf-8", "surrogateescape"))

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        f = cast(_File, file_obj)
        if attrs.size is not None and f.staged is not None:
            f.staged.truncate(attrs.size)
            f.dirty = True
        if attrs.permissions is not None:
            if f.staged is not None:
                f.mode = attrs.permissions & 0o7777
            else:
                await self.setstat(f.path.encode("utf-8", "surrogateescape"), attrs)

    async def close(self, file_obj: object) -> None:
        f = cast(_File, file_obj)
        if f.staged is None:
            return
        try:
            if f.dirty:
                await self._upload(f.path, f.staged)
            if f.mode is not None:
                mode = f"{f.mode:o}"
                await self._call("POST", "/files/permissions", path=f.path, mode=mode)
        finally:
            f.staged.close()

    def exit(self) -> None:
        self._held.close()
        # asyncssh would close the channel with no exit status, which scp
        # reports as a failure (OpenSSH's sftp-server sends 0).
        if not self.channel.is_closing():
            self.channel.exit(0)
