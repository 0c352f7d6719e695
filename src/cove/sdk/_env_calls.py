"""The sandbox's own facts and settings, for both faces (no I/O here): its
home and working directories, the environment of processes started from now
on (`update_env`), and its listening TCP ports."""

from __future__ import annotations

from typing import Any

from cove.sdk._base import Call, Toolbox, wire_body
from cove.wire.errors import BadRequest
from cove.wire.protocol.git import IsPortInUseResponse, PortList, UpdateEnvRequest


def _dir(data: Any) -> str:
    return str(data["dir"])


class EnvCalls:
    def __init__(self, toolbox: Toolbox) -> None:
        self.tb = toolbox

    def work_dir(self) -> Call[str]:
        return self.tb.call("GET", "/work-dir", "get work dir", _dir)

    def home_dir(self) -> Call[str]:
        return self.tb.call("GET", "/user-home-dir", "get home dir", _dir)

    def update_env(self, env: dict[str, str], unset: list[str] | None) -> Call[None]:
        body = UpdateEnvRequest(set=dict(env), unset=list(unset or []))
        return self.tb.void("POST", "/env", "update env", wire_body(body))

    def ports(self) -> Call[list[int]]:
        return self.tb.call("GET", "/port", "list ports",
                            lambda d: PortList.from_wire(d, "port list").ports)  # fmt: skip

    def port_in_use(self, port: int) -> Call[bool]:
        # Checked here too: a bad number would otherwise reach the URL path.
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise BadRequest(f"port must be a number from 1 to 65535, got {port!r}")

        def parse(data: Any) -> bool:
            return IsPortInUseResponse.from_wire(data, "port check").is_in_use

        return self.tb.call("GET", f"/port/{port}/in-use", "check port", parse)
