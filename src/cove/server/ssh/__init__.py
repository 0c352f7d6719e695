"""The SSH server: `ssh TOKEN@HOST -p PORT` into a sandbox (see `server` for the design)."""

from cove.server.ssh.server import SshServer

__all__ = ["SshServer"]
