"""`cove ssh SANDBOX [COMMAND...]`: the system's ssh, with a fresh SSH access token.

The token comes from `create_ssh_access`; the process then becomes `ssh`
(exec), so the terminal, exit code and signals are ssh's own. The server
must run its SSH server (`cove serve --ssh-port`): an embedded Cove has none.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys

from cove.cli.commands import _client


def ssh_command(args: argparse.Namespace) -> int:
    ssh = shutil.which("ssh")
    if ssh is None:
        print(
            "cove: no ssh client found; install it: apt-get install openssh-client", file=sys.stderr
        )
        return 1
    with _client(args) as c:
        access = c.get(args.sandbox).create_ssh_access(args.expires)
    argv = shlex.split(access.ssh_command)
    options = [part for opt in args.ssh_option for part in ("-o", opt)]
    argv = [ssh, *options, *argv[1:], *args.command]
    sys.stdout.flush()
    os.execv(ssh, argv)
    return 1  # not reached: exec replaced this process
