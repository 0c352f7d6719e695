"""The control plane's SSH server (asyncssh): a token as the user name opens a sandbox.

`ssh TOKEN@HOST -p PORT` logs in with no password and no key: the user name
is an SSH access token (`sshaccess`), checked when authentication begins.
An unknown, expired or revoked token gets a banner saying so and no way to
authenticate. Once in, a session is one of

- an interactive shell (`ssh ...`): a PTY in the sandbox (`shell.PtyShell`),
  with window changes passed on;
- a command (`ssh ... 'cmd'`): run without a terminal, stdout and stderr
  apart, stdin passed on, its exit code the SSH exit status
  (`command.SessionCommand`); with `-t` it runs on a PTY instead;
- the sftp subsystem (and so `scp`, which speaks sftp since OpenSSH 9):
  file operations through the agent's files API (`sftp.SandboxSftp`).

asyncssh runs each channel as a process (`SSHServerProcess`: streams with
flow control, window changes raised from stdin) or hands it to the SFTP
server. No port forwarding, agent forwarding or X11 is offered. Everything
reaches the sandbox through its agent, as the sandbox's user; the SSH server
never touches a sandbox's files on the host. An open session keeps the
sandbox active (auto-stop waits), and revoking a token closes the
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
from cove.server.ssh.limiter import FailedLogins
from cove.server.ssh.sftp import SandboxSftp
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
THROTTLED = "cove: too many failed SSH logins from this address; try again in {:.0f} s\r\n"
FAILED = 255  # the exit status ssh itself uses for "could not run it"
PIECE = 64 * 1024  # bytes of client input read at once


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
        self.failures = FailedLogins()
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
            process_factory=_run_process,
            sftp_factory=self._sftp,
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

    def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> SandboxSftp:
        login = _login(chan)
        assert login.record is not None
        return SandboxSftp(chan, self.service, self.clients, login.record)

    def _revoked(self, sandbox_id: str, digest: str | None) -> None:
        for login in list(self.connections):
            mine = login.record is not None and login.record.id == sandbox_id
            if mine and (digest is None or login.digest == digest):
                login.close()


def _login(chan: asyncssh.SSHServerChannel[bytes]) -> _Login:
    login = chan.get_connection().get_owner()
    assert isinstance(login, _Login)
    return login


async def _run_process(process: asyncssh.SSHServerProcess[bytes]) -> None:
    await _login(process.channel).run_process(process)


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
        assert self.conn is not None
        peer = self.conn.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        wait = self.server.failures.wait_left(address)
        if wait:
            self.conn.send_auth_banner(THROTTLED.format(max(wait, 1)))
            return True  # refused before the token is even looked up
        record = self.server.access.authorize(username)
        if record is None:
            self.server.failures.note(address)
            self.conn.send_auth_banner(REFUSED)
            return True  # authentication required, and no method offered: refused
        self.record, self.digest = record, token_hash(username)
        self.server.connections.add(self)
        return False  # the token was the credential

    async def run_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        assert self.record is not None
        await _Session(self.server, self.record).run(process)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _Session:
    """One SSH channel: a shell or a command in the sandbox, until either side ends it."""

    def __init__(self, server: SshServer, record: SandboxRecord) -> None:
        self.server = server
        self.record = record
        self.shell: PtyShell | None = None

    async def run(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        out = Outlet(process)
        bridge = asyncio.create_task(self._bridge(process, out))
        pump = asyncio.create_task(self._pump(process, out))
        closed = asyncio.create_task(process.channel.wait_closed())
        try:
            # The client may leave first: then the bridge is cancelled, and
            # cleans up behind it (the PTY killed, the session deleted).
            await asyncio.wait({bridge, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (bridge, pump, closed):
                task.cancel()
            await asyncio.gather(bridge, pump, closed, return_exceptions=True)
        if bridge.cancelled() or process.channel.is_closing():
            return
        code = bridge.result()
        # SSH carries 0-255; a status out of that range (a negative one) is a failure.
        process.exit(code if 0 <= code <= 255 else FAILED)

    async def _pump(self, process: asyncssh.SSHServerProcess[bytes], out: Outlet) -> None:
        """The client's input into the queue, in order; window changes to the PTY."""
        while True:
            try:
                data = await process.stdin.read(PIECE)
            except asyncssh.TerminalSizeChanged as change:
                if self.shell is not None:
                    self.shell.resize(change.width, change.height)
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue  # not passed on: ^C on a terminal is a byte, and arrives as one
            await out.input.put(data or Outlet.EOF)
            if not data:
                return

    async def _bridge(self, process: asyncssh.SSHServerProcess[bytes], out: Outlet) -> int:
        try:
            with self.server.service.connection_open(self.record.id):
                return await self._start(process, out)
        except (CoveError, AgentUnreachable) as err:
            message = err.message if isinstance(err, CoveError) else str(err)
            await out.write(f"cove: {message}\r\n".encode(), stderr=True)
        except Exception:
            log.exception("ssh session in sandbox %s failed", self.record.id)
            await out.write(b"cove: internal error\r\n", stderr=True)
        return FAILED

    async def _start(self, process: asyncssh.SSHServerProcess[bytes], out: Outlet) -> int:
        r = self.record
        socket = self.server.service.agent_endpoint(r.owner, r.id)  # refuses a stopped sandbox
        agent = AgentLink(socket, self.server.clients.get(socket, r.id))
        command = process.command
        term = process.term_type
        if term:  # the client asked for a PTY
            cols, rows, _, _ = process.term_size
            self.shell = PtyShell(agent, out, term, cols, rows, command)
            return await self.shell.run()
        return await SessionCommand(agent, out, command or "exec bash").run()
