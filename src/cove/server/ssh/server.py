"""The control plane's SSH server (asyncssh): a token as the user name opens a sandbox.

`ssh TOKEN@HOST -p PORT` logs in with no password and no key: the user name
is an SSH access token (`sshaccess`), checked when authentication begins.
An unknown, expired or revoked token gets a banner saying so and no way to
authenticate. Once in, a session is either

- an interactive shell (`ssh ...`): a PTY in the sandbox (`shell.PtyShell`),
  with window changes passed on; or
- a command (`ssh ... 'cmd'`): run without a terminal, stdout and stderr
  apart, stdin passed on, its exit code the SSH exit status
  (`command.SessionCommand`); with `-t` it runs on a PTY instead.

No port forwarding, agent forwarding, X11 or subsystems (sftp) are offered.
Everything reaches the sandbox through its agent, as the sandbox's user; the
SSH server never touches a sandbox's files on the host. An open session
keeps the sandbox active (auto-stop waits), and revoking a token closes the
connections that logged in with it. The host key is made once and kept in
the data directory, so clients see the same key across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from cove.server.agentclient import AgentUnreachable
from cove.server.ssh.channel import AgentLink, Outlet
from cove.server.ssh.command import SessionCommand
from cove.server.ssh.shell import PtyShell
from cove.server.sshaccess import SshAccessService, token_hash
from cove.wire.errors import CoveError

if TYPE_CHECKING:
    from cove.server.records import SandboxRecord
    from cove.server.sandboxes import SandboxService
    from cove.server.toolbox import AgentClients

log = logging.getLogger("cove.server")

HOST_KEY_FILE = "ssh_host_ed25519_key"
REFUSED = (
    "cove: this SSH token is unknown, expired or revoked; create one with create_ssh_access\r\n"
)
FAILED = 255  # the exit status ssh itself uses for "could not run it"


def load_or_generate_host_key(data_dir: Path) -> asyncssh.SSHKey:
    path = data_dir / HOST_KEY_FILE
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.touch(mode=0o600)
    path.write_bytes(key.export_private_key())
    return key


class SshServer:
    def __init__(
        self,
        access: SshAccessService,
        service: SandboxService,
        clients: AgentClients,
        host: str,
        port: int,
        data_dir: Path,
    ) -> None:
        self.access = access
        self.service = service
        self.clients = clients
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.connections: set[_Login] = set()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        access.on_revoke.append(self._revoked)

    async def start(self) -> None:
        key = load_or_generate_host_key(self.data_dir)
        self._acceptor = await asyncssh.create_server(
            lambda: _Login(self),
            self.host,
            self.port,
            server_host_keys=[key],
            encoding=None,  # bytes both ways: terminals carry any bytes
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            keepalive_interval=30,
        )
        log.info("SSH server on %s:%s", self.host, self._acceptor.get_port())

    async def stop(self) -> None:
        for login in list(self.connections):
            login.close()
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

    def _revoked(self, sandbox_id: str, digest: str | None) -> None:
        for login in list(self.connections):
            mine = login.record is not None and login.record.id == sandbox_id
            if mine and (digest is None or login.digest == digest):
                login.close()


class _Login(asyncssh.SSHServer):
    """One SSH connection: the token it logged in with and the sandbox that opens."""

    def __init__(self, server: SshServer) -> None:
        self.server = server
        self.conn: asyncssh.SSHServerConnection | None = None
        self.record: SandboxRecord | None = None
        self.digest = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def begin_auth(self, username: str) -> bool:
        record = self.server.access.authorize(username)
        if record is None:
            assert self.conn is not None
            self.conn.send_auth_banner(REFUSED)
            return True  # authentication required, and no method offered: refused
        self.record, self.digest = record, token_hash(username)
        self.server.connections.add(self)
        return False  # the token was the credential

    def session_requested(self) -> _Session:
        assert self.record is not None
        return _Session(self.server, self.record)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _Session(asyncssh.SSHServerSession[bytes]):
    """One SSH channel: a shell or a command in the sandbox, until either side ends it."""

    def __init__(self, server: SshServer, record: SandboxRecord) -> None:
        self.server = server
        self.record = record
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.out: Outlet | None = None
        self.command: str | None = None
        self.term: tuple[str, int, int] | None = None  # type, cols, rows when a PTY was asked
        self.shell: PtyShell | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan
        self.out = Outlet(chan)

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], _: object
    ) -> bool:
        self.term = (term_type, term_size[0], term_size[1])
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False  # no sftp: files go through the files API (`sandbox.fs`)

    def session_started(self) -> None:
        self.task = asyncio.create_task(self._run())

    def data_received(self, data: bytes, datatype: object) -> None:
        if self.out is not None:
            self.out.feed(data)

    def eof_received(self) -> bool:
        if self.out is not None:
            self.out.feed(Outlet.EOF)
        return True  # keep the channel open for the output still to come

    def terminal_size_changed(self, width: int, height: int, pw: int, ph: int) -> None:
        if self.term is not None:
            self.term = (self.term[0], width, height)
        if self.shell is not None:
            self.shell.resize(width, height)

    def pause_writing(self) -> None:
        if self.out is not None:
            self.out.writable.clear()

    def resume_writing(self) -> None:
        if self.out is not None:
            self.out.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        assert self.chan is not None and self.out is not None
        code = FAILED
        try:
            with self.server.service.connection_open(self.record.id):
                code = await self._bridge(self.out)
        except (CoveError, AgentUnreachable) as err:
            message = err.message if isinstance(err, CoveError) else str(err)
            await self.out.write(f"cove: {message}\r\n".encode(), stderr=True)
        except asyncio.CancelledError:
            return  # the client went away: the bridge cleaned up behind it
        except Exception:
            log.exception("ssh session in sandbox %s failed", self.record.id)
            await self.out.write(b"cove: internal error\r\n", stderr=True)
        if not self.chan.is_closing():
            # SSH carries 0-255; a status out of that range (a negative one) is a failure.
            self.chan.exit(code if 0 <= code <= 255 else FAILED)

    async def _bridge(self, out: Outlet) -> int:
        r = self.record
        socket = self.server.service.agent_socket(r.owner, r.id)  # refuses a stopped sandbox
        agent = AgentLink(socket, self.server.clients.get(socket))
        if self.term is not None:
            term, cols, rows = self.term
            self.shell = PtyShell(agent, out, term, cols, rows, self.command)
            return await self.shell.run()
        command = self.command if self.command is not None else "exec bash"
        return await SessionCommand(agent, out, command).run()
