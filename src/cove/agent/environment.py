"""`POST /env`: the official SDK's `sandbox.update_env`.

It changes the environment the agent gives the processes it starts from now
on (exec, code run, sessions, PTYs, interpreter contexts); running processes
keep theirs, as on Daytona. The change lives in the agent's memory: a
restarted sandbox starts again from the environment it was created with.
"""

from __future__ import annotations

from cove.agent.core import Agent
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.wire.errors import BadRequest
from cove.wire.protocol.git import UpdateEnvRequest


def _check_name(name: str) -> str:
    if not name or "=" in name or "\0" in name:
        raise BadRequest(f"invalid environment variable name: {name!r}")
    return name


class EnvRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def register(self, router: Router) -> None:
        router.add("POST", "/env", self.update)

    async def aclose(self) -> None:
        return None

    async def update(self, req: Request) -> Response:
        body = UpdateEnvRequest.from_wire(req.json())
        for name in [*body.set, *body.unset]:
            _check_name(name)
        if any("\0" in value for value in body.set.values()):
            raise BadRequest("environment values must not contain NUL bytes")
        env = self.agent.config.env
        for name in body.unset:
            env.pop(name, None)
        if body.unset_value_prefix:
            prefix = body.unset_value_prefix
            for name in [n for n, v in env.items() if v.startswith(prefix) and n not in body.set]:
                del env[name]
        env.update(body.set)
        return json_response(dict(env))
