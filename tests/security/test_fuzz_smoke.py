"""A short run of `make fuzz` inside the test suite: every operation of the OpenAPI
document gets generated requests, and none may answer 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.security.fuzz import Tally, fuzz_operation, operations
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
    assert tally.requests > 200
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert api.get("/health").status_code == 200
