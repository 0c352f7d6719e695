"""The server keeps no connection to an agent that is gone.

Toolbox calls reuse kept-alive connections to each sandbox's agent. Before
`make soak` found it, the pool of a deleted or stopped sandbox stayed in the
server with its idle connections: one open socket (whose other end was gone)
per sandbox that ever had toolbox traffic, for ever, until the server ran
out of file descriptors. Preview tunnels kept for reuse were the same: closed
only at the port's next request, which a deleted sandbox never gets.
"""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from tests.e2e.test_preview import PORT, TOKEN, start_app
from tests.reliability.helpers import wait_for
from tests.serverproc import ServerProcess


def dead_agent_sockets(pid: int) -> int:
    """The server's connected unix sockets whose peer no longer exists (`ss` shows peer 0)."""
    out = subprocess.run(["ss", "-xpn"], capture_output=True, text=True, check=True).stdout
    count = 0
    for line in out.splitlines():
        fields = line.split()
        if f"pid={pid}," in line and fields[1] == "ESTAB" and fields[7] == "0":
            count += 1
    return count


@pytest.mark.timeout(180)
def test_deleted_and_stopped_sandboxes_leave_no_agent_connection(
    daytona: Any, server: ServerProcess
) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    before = dead_agent_sockets(pid)
    made = [daytona.create() for _ in range(4)]
    for sb in made:
        assert sb.process.exec("echo kept-alive").result == "kept-alive\n"
        assert sb.fs.download_file("/etc/hostname")  # a streamed exchange too
    start_app(made[1])  # a preview's kept tunnel to the agent as well
    link = made[1].get_preview_link(PORT)
    r = httpx.get(link.url + "/hello", headers={TOKEN: link.token}, timeout=30)
    assert r.text.startswith("hello from the sandbox"), r.text
    daytona.stop(made[0])
    for sb in made[1:]:
        daytona.delete(sb)
    wait_for(
        lambda: dead_agent_sockets(pid) <= before,
        10,
        f"the server to close its connections to gone agents ({before} before)",
    )
    # A stopped sandbox started again is reached on fresh connections.
    daytona.start(made[0])
    assert made[0].process.exec("echo again").result == "again\n"
    daytona.delete(made[0])
