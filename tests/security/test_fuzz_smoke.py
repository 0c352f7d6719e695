"""A short run of `make fuzz` inside the test suite: every operation of the OpenAPI
document gets generated requests, and none may answer 5xx."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from cove.agent.environment import EnvRoutes
from cove.agent.git.routes import GitRoutes
from cove.agent.httpserver import Handler, Router
from cove.agent.ports.routes import PortRoutes
from tests.security.fuzz import Tally, fuzz_operation, operations
from tests.security.fuzz_extra import extra_operations
from tests.serverproc import ServerProcess


def test_openapi_document_describes_the_routes(api: httpx.Client) -> None:
    doc = api.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert {"post", "get"} <= set(paths["/api/sandbox"])
    execute = paths["/toolbox/{sandboxId}/process/execute"]["post"]
    schema = execute["requestBody"]["content"]["application/json"]["schema"]
    body = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert body["required"] == ["command"]
    assert {"command", "cwd", "envs", "timeout"} <= set(body["properties"])


class _Recorder(Router):
    """Keeps the (method, pattern) of every route a feature registers."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.seen.add((method.lower(), pattern))
        super().add(method, pattern, handler)


def test_openapi_lists_every_git_port_and_env_route(api: httpx.Client) -> None:
    """Read from the agent's own registrations: a route added later and not
    described fails here."""
    router = _Recorder()
    agent: Any = SimpleNamespace(config=SimpleNamespace(workdir="/"))
    for feature in (GitRoutes, PortRoutes, EnvRoutes):
        feature(agent).register(router)
    assert len(router.seen) >= 23
    paths = api.get("/api/openapi.json").json()["paths"]
    described = {(m, p.removeprefix("/toolbox/{sandboxId}")) for p in paths for m in paths[p]}
    assert router.seen - described == set()
    doc = api.get("/api/openapi.json").json()
    clone = paths["/toolbox/{sandboxId}/git/clone"]["post"]
    ref = clone["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["url", "path"]
    assert {"branch", "commit_id", "username", "password", "depth"} <= set(schema["properties"])
    status = paths["/toolbox/{sandboxId}/git/status"]["get"]
    assert [p["name"] for p in status["parameters"]] == ["sandboxId", "path"]


@pytest.mark.timeout(300)
def test_a_short_fuzz_run_gets_no_5xx(
    server: ServerProcess, api: httpx.Client, sandbox: Any
) -> None:
    doc = api.get("/api/openapi.json").json()
    tally = Tally()
    # A client without default headers: the fuzzer picks the key (or none) per request.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for op in operations(doc):
            if op.path == "/api/sandbox" and op.method == "POST":
                continue  # creating sandboxes is `make fuzz`'s job; too slow here
            schemas = doc["components"]["schemas"]
            fuzz_operation(client, op, sandbox.id, schemas, 12, tally, server.keys)
        # Snapshots, images, dashboard: reads and sign-in only here; the server is
        # shared, so nothing that builds, prunes, deletes or deactivates.
        for op in extra_operations():
            if op.method != "GET" and not op.path.startswith("/dash/"):
                continue
            fuzz_operation(client, op, sandbox.id, {}, 12, tally, server.keys)
    assert tally.requests > 200
    # With what the server logged as errors, whose cause a client cannot see.
    logged = [line for line in server.output if "Traceback" in line or "ERROR" in line]
    assert not tally.failures, "\n".join([*tally.failures[:10], *logged[-10:]])
    assert api.get("/health").status_code == 200
