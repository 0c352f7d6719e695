"""What `make fuzz` reaches beyond the OpenAPI document: snapshots, images, build logs,
the dashboard's own routes, and the MCP endpoint's tools.

The HTTP routes are written here as `Operation`s in the OpenAPI shape, so the
same generator as every other route drives them. MCP is JSON-RPC over one
route: a session is opened once, then every tool gets calls with arguments
generated from its own input schema (a sandbox id is mostly the live one).
The fuzzing server must not reach a registry: `fuzz.py` points
COVE_IMAGE_REGISTRY at a loopback port where nothing listens.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.security.fuzz import JSONV, TEXT, Operation, Tally, mostly, schema_strategy

S = {"type": "string"}
B = {"type": "boolean"}
I = {"type": "integer"}  # noqa: E741


def _q(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": S} for n in names]


def _p(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "schema": S} for n in names]


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


# Dockerfiles a snapshot create may carry: short and cheap, some odd (plus any text).
DOCKERFILES = [
    "FROM python:3.11-slim\nRUN true\n",
    "FROM python:3.11-slim\nRUN sleep 60\n",
    "FROM scratch\n",
    "FROM python:3.11-slim\nCOPY ../../etc/passwd /x\n",
    "FROM nosuch-image:1\n",
    "FROM python:3.11-slim\nHEALTHCHECK CMD true\n",
]
SNAPSHOT_NAMES = ["fuzz-snap-1", "fuzz-snap-2"]


def _one_of_or_text(values: list[str]) -> dict[str, Any]:
    return {"anyOf": [{"enum": values}, {"enum": values}, S]}


def extra_operations() -> list[Operation]:
    sandbox = _p("sandboxIdOrName")
    snapshot = _obj(
        name=_one_of_or_text(SNAPSHOT_NAMES),
        imageName=_one_of_or_text(["python:3.11-slim", "debian:bookworm", "nosuch:1"]),
        entrypoint={"type": "array", "items": S},
        cpu=I,
        memory=I,
        disk=I,
        # (contextHashes is left to the wrong-types bodies: any entry is a 400.)
        buildInfo={
            **_obj(dockerfileContent=_one_of_or_text(DOCKERFILES)),
            "required": ["dockerfileContent"],
        },
    )
    snapshot["required"] = ["name"]
    return [
        Operation("POST", "/api/snapshots", [], snapshot),
        Operation("GET", "/api/snapshots", _q("page", "limit", "name"), None),
        Operation("GET", "/api/snapshots/{ref}", _p("ref"), None),
        Operation("DELETE", "/api/snapshots/{ref}", _p("ref"), None),
        Operation("POST", "/api/snapshots/{ref}/activate", _p("ref"), None),
        Operation("POST", "/api/snapshots/{ref}/deactivate", _p("ref"), None),
        Operation("GET", "/api/snapshots/{ref}/build-logs-url", _p("ref"), None),
        Operation("GET", "/api/snapshots/{ref}/build-logs", _p("ref") + _q("follow"), None),
        Operation("POST", "/api/sandbox/{sandboxIdOrName}/snapshot", sandbox, _obj(name=S)),
        Operation("GET", "/api/sandbox/{sandboxIdOrName}/build-logs-url", sandbox, None),
        Operation("GET", "/api/sandbox/{sandboxIdOrName}/build-logs", sandbox + _q("follow"), None),
        Operation("GET", "/api/images", [], None),
        Operation("POST", "/api/images/prune", _q("all"), None),
        Operation("POST", "/api/images/build", _q("tag", "dockerfile"), _obj(x=S)),
        Operation("GET", "/", [], None),
        Operation("POST", "/dash/login", [], _obj(key=S)),
        Operation("POST", "/dash/logout", [], _obj(csrf=S)),
        Operation("GET", "/favicon.ico", [], None),
        Operation("GET", "/dash/static/{path}", _p("path"), None),
    ]


def extra_pools() -> dict[str, list[str]]:
    """Known values for the extra routes' path parameters."""
    return {"ref": [*SNAPSHOT_NAMES, "python:3.11-slim"], "path": ["app.js", "../app.js"]}


# -- MCP -------------------------------------------------------------------------------

NEVER = {"create_sandbox", "delete_sandbox"}  # cost, and the live sandbox must stay
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _answers(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer (plain JSON or server-sent events)."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        found = []
        for line in text.splitlines():
            if line.startswith("data:"):
                try:
                    found.append(json.loads(line[5:]))
                except ValueError:
                    continue
        return found
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else [value]


def fuzz_mcp(base_url: str, auth: dict[str, str], live: str, examples: int, tally: Tally) -> None:
    """`examples` generated tool calls (and odd JSON-RPC messages) through one MCP session."""
    with httpx.Client(base_url=base_url, headers={**auth, **MCP_HEADERS}, timeout=60) as c:
        init = {
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                       "clientInfo": {"name": "fuzz", "version": "0"}},
        }  # fmt: skip
        r = c.post("/mcp", json=init)
        session = r.headers.get("mcp-session-id", "")
        headers = {"Mcp-Session-Id": session} if session else {}
        c.post(
            "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        listed = c.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
        )
        tools = [t for a in _answers(listed) for t in a.get("result", {}).get("tools", [])]
        tools = [t for t in tools if t["name"] not in NEVER]
        assert tools, f"no MCP tools listed: {listed.status_code} {listed.text[:300]}"

        def arguments(tool: dict[str, Any]) -> st.SearchStrategy[Any]:
            schema = dict(tool.get("inputSchema") or {})
            props = dict(schema.get("properties", {}))
            fixed: dict[str, st.SearchStrategy[Any]] = {}
            if "sandbox_id" in props:
                fixed["sandbox_id"] = mostly([live])
                props.pop("sandbox_id")
            if "timeout" in props:  # a generated `yes` must end, as in fuzz.py
                fixed["timeout"] = st.floats(0.1, 2)
                props.pop("timeout")
            rest = schema_strategy({**schema, "properties": props}, {}, TEXT)
            return st.tuples(st.fixed_dictionaries(fixed), rest).map(
                lambda pair: {**(pair[1] if isinstance(pair[1], dict) else {}), **pair[0]}
            )

        call = st.sampled_from(tools).flatmap(
            lambda t: arguments(t).map(
                lambda a: {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": t["name"], "arguments": a},
                }
            )
        )
        odd = st.fixed_dictionaries(
            {"jsonrpc": st.sampled_from(["2.0", "1.0", ""]), "id": JSONV, "method": TEXT},
            optional={"params": JSONV},
        )
        name = "POST /mcp (tools/call)"

        @settings(
            max_examples=examples,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(st.one_of(call, call, call, odd))
        def one(message: dict[str, Any]) -> None:
            try:
                r = c.post("/mcp", content=json.dumps(message), headers=headers)
            except httpx.HTTPError as exc:
                tally.failures.append(f"{name}: {type(exc).__name__}: {exc} <- {message!r:.300}")
                return
            tally.requests += 1
            tally.by_status[r.status_code] += 1
            tally.by_operation[name][r.status_code] += 1
            internal = [a for a in _answers(r) if a.get("error", {}).get("code") == -32603]
            if r.status_code >= 500 or internal:
                tally.failures.append(f"{name}: {r.status_code} {r.text[:300]} <- {message!r:.300}")

        one()
        if session:
            c.delete("/mcp", headers=headers)
