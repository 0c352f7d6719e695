"""Giving a pre-started (pooled) sandbox the id of the request that takes it.

Its directory and cgroups are renamed (cgroup v1 allows renaming a cgroup
with processes in it; v2 does not, so v2 hosts keep no pool), and its agent
is told its new id, which is what its /health reports.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from cove.wire import http1

IDENTITY_TIMEOUT = 5.0


def rename(root: Path, old: str, new: str, cgroup_dirs: dict[str, str]) -> None:
    """Move sandbox `old`'s directory and cgroups to `new`; `cgroup_dirs` is updated."""
    os.rename(root / old, root / new)
    for ctrl, path in list(cgroup_dirs.items()):
        target = os.path.join(os.path.dirname(path), new)
        os.rename(path, target)
        cgroup_dirs[ctrl] = target


async def tell_identity(socket: str, sandbox_id: str) -> None:
    """Tell an adopted sandbox's agent its new id; OSError if it does not take it."""
    body = json.dumps({"sandboxId": sandbox_id}).encode()
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket), IDENTITY_TIMEOUT)
    try:
        fields = {
            "Host": "agent",
            "Connection": "close",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        writer.write(http1.request_head("POST", "/_cove/identity", fields) + body)
        raw = await asyncio.wait_for(reader.readuntil(http1.END), IDENTITY_TIMEOUT)
        status = http1.parse_status(raw).status
        if status != 200:
            raise OSError(f"agent refused its new identity: HTTP {status}")
    finally:
        writer.close()
