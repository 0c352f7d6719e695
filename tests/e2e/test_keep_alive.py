"""A client's idle keep-alive connection outlives a pause between calls.

uvicorn closes an idle connection after 5 s by default, and a close that
crosses the client's next request on that connection resets it: the official
SDK (urllib3) retries no POST, so a user saw `Connection reset by peer` from
`process.exec` after pausing. The server keeps idle connections for
`KEEP_ALIVE_SECONDS`.
"""

from __future__ import annotations

import http.client
import time

from cove.server.app import KEEP_ALIVE_SECONDS
from tests.serverproc import ServerProcess

PAUSE = 7.0  # longer than uvicorn's default keep-alive (5 s), shorter than ours


def test_an_idle_connection_still_serves_the_next_request_after_a_pause(
    server: ServerProcess,
) -> None:
    assert KEEP_ALIVE_SECONDS > PAUSE
    headers = {"Authorization": f"Bearer {server.key}"}
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("GET", "/api/sandbox", headers=headers)
        first = conn.getresponse()
        assert (first.status, first.read()[:9]) == (200, b'{"items":')
        sock = conn.sock
        time.sleep(PAUSE)  # the idle pause is what is tested, not a wait for an event
        # On the same socket (http.client reconnects only after a "close"): a
        # server that dropped it meanwhile makes this raise RemoteDisconnected.
        conn.request("GET", "/api/sandbox", headers=headers)
        assert conn.sock is sock
        second = conn.getresponse()
        assert (second.status, second.read()[:9]) == (200, b'{"items":')
    finally:
        conn.close()
