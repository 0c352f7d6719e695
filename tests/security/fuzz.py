"""`make fuzz`: property-based fuzzing of a real server from its OpenAPI document.

Starts `cove serve` with two keys and one live sandbox, reads
`/api/openapi.json`, and for every operation lets Hypothesis generate
requests: bodies valid for the schema, bodies of the schema's fields with
values of any JSON type, any JSON at all, raw bytes (invalid UTF-8 included),
odd path parameters and keys. Toolbox paths mostly carry the live sandbox's
id. Every answer must be below 500; afterwards the server must be up, its log
free of tracebacks and the sandbox still working. Prints (and, with
`--report FILE`, writes) the figures as Markdown.

Two things are held back on purpose: `timeout` of execute, code-run and
session exec is forced into [0.1, 2] s (a generated `yes` with no limit would
run for ever, which is a property of shell, not a bug), and the live sandbox's
id is never sent to delete/stop/start (the rest of the run needs it).
Sandboxes, interpreter contexts and PTYs the fuzzer creates are deleted at once.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.serverproc import ServerProcess, free_port

KEYS = ["fuzz-key-alice", "fuzz-key-bob"]
JSONV = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
# Text as clients may send it, lone surrogates and NULs included (JSON escapes them).
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\0", "\ud800", "\udcff", "..", "../../etc", "/", "~", "$HOME"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=10).map(lambda s: s + "\udc80"),
)

# Text a well-meaning client sends: plain words and a few harmless commands.
CLEAN = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=30),
    st.sampled_from(
        ["echo hi", "ls -la", "pwd", "env", "exit 3", "echo err >&2", "printf '\\377'"]
    ),
)


def schema_strategy(
    schema: dict[str, Any], components: dict[str, Any], text: st.SearchStrategy[str] = CLEAN
) -> st.SearchStrategy[Any]:
    """Values valid for the (small) JSON Schema subset the OpenAPI document uses."""
    if "$ref" in schema:
        return schema_strategy(components[schema["$ref"].rsplit("/", 1)[1]], components, text)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([schema_strategy(s, components, text) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(0, 5) | st.integers(-(10**6), 10**6)
    if kind == "string":
        return text
    if kind == "array":
        return st.lists(schema_strategy(schema.get("items", {}), components, text), max_size=4)
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        if not props:
            values = schema_strategy(schema.get("additionalProperties", {}), components, text)
            return st.dictionaries(text, values, max_size=5)
        return st.fixed_dictionaries(
            {k: schema_strategy(v, components, text) for k, v in props.items() if k in required},
            optional={
                k: schema_strategy(v, components, text)
                for k, v in props.items()
                if k not in required
            },
        )
    return JSONV


def body_strategy(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """What a request body may be: valid, wrongly typed, any JSON, or not JSON at all."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    names = list(schema.get("properties", {})) or ["x"]
    wrong_types = st.dictionaries(st.sampled_from(names), JSONV, max_size=len(names))
    raw = st.binary(max_size=64).map(lambda b: RawBody(b))
    huge = st.sampled_from([10**30, -(10**30), 10**400, 1e308, -1, 0]).flatmap(
        lambda n: st.fixed_dictionaries({}, optional={k: st.just(n) for k in names})
    )
    return st.one_of(
        schema_strategy(schema, components),
        schema_strategy(schema, components),
        schema_strategy(schema, components, TEXT),
        wrong_types,
        huge,
        JSONV,
        raw,
    )


@dataclass(frozen=True)
class RawBody:
    data: bytes


@dataclass
class Operation:
    method: str
    path: str
    params: list[dict[str, Any]]
    body: dict[str, Any] | None


@dataclass
class Tally:
    requests: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    by_operation: collections.defaultdict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    last: str = "none"  # the request sent last and its answer: a failure names it


def operations(doc: dict[str, Any]) -> list[Operation]:
    ops = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ops.append(
                Operation(method.upper(), path, op.get("parameters", []), body.get("schema"))
            )
    return ops


DESTRUCTIVE = re.compile(r"/api/sandbox/\{sandboxIdOrName\}(/start|/stop)?$")


def mostly(known: list[str]) -> st.SearchStrategy[str]:
    """A known value nine times in ten, else any text: real objects get real calls."""
    if not known:
        return TEXT
    return st.integers(0, 9).flatmap(lambda n: TEXT if n == 0 else st.sampled_from(known))


def request_strategy(
    op: Operation, live: str, pools: dict[str, list[str]], components: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for p in op.params:
        if p["in"] == "path":
            if p["name"] == "sandboxId" or (
                p["name"] == "sandboxIdOrName"
                and not (op.method != "GET" and DESTRUCTIVE.search(op.path))
            ):
                parts["path." + p["name"]] = mostly([live])
            elif p["name"] == "sandboxIdOrName":
                parts["path." + p["name"]] = TEXT.filter(lambda s: s != live)
            else:
                parts["path." + p["name"]] = mostly(pools.get(p["name"], []))
        else:
            parts["query." + p["name"]] = st.one_of(
                st.none(),
                TEXT,
                JSONV.map(json.dumps),
                st.sampled_from(["[" * 1500, '{"a":' * 1200, "NaN", "-Infinity"]),
            )
    if op.body is not None:
        parts["body"] = body_strategy(op.body, components)
    parts["auth"] = st.sampled_from(["alice"] * 18 + ["bob", "none", "wrong"])
    return st.fixed_dictionaries(parts)


def build_request(
    client: httpx.Client, op: Operation, drawn: dict[str, Any], keys: list[str]
) -> httpx.Request:
    path = op.path
    query = {}
    for key, value in drawn.items():
        if key.startswith("path."):
            name = key[5:]
            text = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            path = path.replace("{" + name + "}", quote(text, safe="") or "%20")
        elif key.startswith("query.") and value is not None:
            query[key[6:]] = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    headers = {
        "alice": {"Authorization": f"Bearer {keys[0]}"},
        "bob": {"Authorization": f"Bearer {keys[1]}"},
        "wrong": {"Authorization": "Bearer nope"},
        "none": {},
    }[drawn["auth"]]
    content = None
    if "body" in drawn:
        body = drawn["body"]
        if isinstance(body, dict) and op.path.endswith(("/execute", "/code-run", "/exec")):
            body = {**body, "timeout": min(max(_number(body.get("timeout")), 0.1), 2.0)}
        content = body.data if isinstance(body, RawBody) else json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}
    return client.build_request(op.method, path, params=query, content=content, headers=headers)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 1.0
    return float(value) if abs(value) < 1e6 else 1.0


def prepare(client: httpx.Client, live: str, auth: dict[str, str]) -> dict[str, list[str]]:
    """Sessions, a finished command and an interpreter context to aim at (re-made each time:
    the fuzzer deletes them too)."""
    tb = f"/toolbox/{live}/process"
    pools: dict[str, list[str]] = {"sessionId": ["s1", "s2"], "commandId": [], "contextId": []}
    for session in pools["sessionId"]:
        client.post(f"{tb}/session", json={"sessionId": session}, headers=auth)
    r = client.post(f"{tb}/session/s1/exec", json={"command": "echo hi"}, headers=auth)
    if r.status_code == 200:
        pools["commandId"].append(r.json()["cmdId"])
    r = client.post(f"{tb}/interpreter/context", json={}, headers=auth)
    if r.status_code == 200:
        pools["contextId"].append(r.json()["id"])
    return pools


def fuzz_operation(
    client: httpx.Client,
    op: Operation,
    live: str,
    components: dict[str, Any],
    examples: int,
    tally: Tally,
    keys: list[str] = KEYS,
) -> None:
    """`examples` generated requests for one operation, counted into `tally`."""
    name = f"{op.method} {op.path}"
    try:
        pools = prepare(client, live, {"Authorization": f"Bearer {keys[0]}"})
    except httpx.HTTPError as exc:  # a connection the last request left broken, say
        tally.failures.append(
            f"{name}: preparing: {type(exc).__name__}: {exc}; the request before: {tally.last}"
        )
        return
    from tests.security.fuzz_extra import extra_pools  # it imports from this module

    pools.update(extra_pools())

    @settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(request_strategy(op, live, pools, components))
    def one(drawn: dict[str, Any]) -> None:
        try:
            request = build_request(client, op, drawn, keys)
        except httpx.InvalidURL:  # more than the client will send (e.g. a 64 KiB query)
            return
        started = time.monotonic()
        try:
            response = client.send(request)
        except httpx.HTTPError as exc:
            tally.failures.append(f"{name}: {type(exc).__name__}: {exc} <- {drawn!r:.300}")
            tally.last = f"{name} <- {drawn!r:.300}: {type(exc).__name__}"
            return
        tally.last = f"{name} <- {drawn!r:.300}: {response.status_code}"
        tally.slowest = max(tally.slowest, time.monotonic() - started)
        tally.requests += 1
        tally.by_status[response.status_code] += 1
        tally.by_operation[name][response.status_code] += 1
        if response.status_code >= 500:
            tally.failures.append(
                f"{name}: {response.status_code} {response.text[:300]} <- {drawn!r:.300}"
            )
        # What the fuzzer creates it deletes: sandboxes and interpreter workers cost memory.
        # (Only those answers are read as JSON: a file download's is multipart.)
        if op.method == "POST" and response.status_code in (200, 201):
            owner = {"Authorization": request.headers["Authorization"]}
            if op.path == "/api/sandbox":
                client.delete(f"/api/sandbox/{response.json()['id']}", headers=owner)
            elif op.path.endswith(("/interpreter/context", "/process/pty")):
                made = response.json()
                made_id = quote(str(made.get("id") or made.get("sessionId")), safe="")
                client.delete(f"{request.url.path}/{made_id}", headers=owner)

    one()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=150, help="requests per operation")
    parser.add_argument("--exec-examples", type=int, default=600, help="for execute/code-run")
    parser.add_argument("--create-examples", type=int, default=60, help="for POST /api/sandbox")
    parser.add_argument("--ws-examples", type=int, default=300, help="per WebSocket route")
    parser.add_argument("--report", type=Path, help="write the Markdown figures here too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cove-fuzz-") as tmp:
        # No traffic leaves this host: sandboxes get no egress, image pulls go to a
        # loopback port where nothing listens, and a generated RUN ends within seconds.
        env = {
            "COVE_NETWORK": "off",
            "COVE_IMAGE_REGISTRY": f"127.0.0.1:{free_port()}",
            "COVE_BUILD_STEP_TIMEOUT": "5",
        }
        server = ServerProcess(Path(tmp) / "data", list(KEYS), env=env).start(120)
        try:
            return run(server, args)
        finally:
            server.delete_all_sandboxes()  # fuzzed creates must not outlive the run
            server.stop()


def run(server: ServerProcess, args: argparse.Namespace) -> int:
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        live = client.post("/api/sandbox", json={}, headers=auth).json()["id"]
        doc = client.get("/api/openapi.json", headers=auth).json()
        components = doc["components"]["schemas"]
        tally = Tally()
        started = time.monotonic()
        from tests.security.fuzz_extra import extra_operations, fuzz_mcp

        ops = operations(doc) + extra_operations()
        for op in ops:
            examples = args.examples
            if op.path.endswith(("/process/execute", "/process/code-run")):
                examples = args.exec_examples
            elif (
                op.method == "POST" and op.path in ("/api/sandbox", "/api/snapshots")
            ) or op.path.endswith(("/snapshot", "/images/build")):
                examples = args.create_examples
            fuzz_operation(client, op, live, components, examples, tally)
            print(
                f"{op.method:6} {op.path}: {dict(tally.by_operation[f'{op.method} {op.path}'])}",
                flush=True,
            )
        from tests.security.fuzz_ws import fuzz_websockets  # it imports from this module

        pools = prepare(client, live, auth)
        fuzz_websockets(server.url, auth, live, pools, args.ws_examples, tally)
        for name in [n for n in tally.by_operation if n.startswith("WS ")]:
            print(f"{name}: {dict(tally.by_operation[name])}", flush=True)
        fuzz_mcp(server.url, auth, live, args.ws_examples, tally)
        print(f"MCP: {dict(tally.by_operation['POST /mcp (tools/call)'])}", flush=True)
        duration = time.monotonic() - started
        problems = _still_well(client, server, live, auth)
        client.delete(f"/api/sandbox/{live}", headers=auth)
    report = _report(tally, duration, problems, len(ops))
    print(report)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report)
    for failure in tally.failures[:20]:
        print("FAIL", failure, file=sys.stderr)
    return 0 if not tally.failures and not problems else 1


def _still_well(
    client: httpx.Client, server: ServerProcess, live: str, auth: dict[str, str]
) -> list[str]:
    """What is wrong with the server after the run (empty: nothing)."""
    problems = []
    if client.get("/health").status_code != 200:
        problems.append("/health does not answer 200")
    r = client.post(f"/toolbox/{live}/process/execute", json={"command": "echo ok"}, headers=auth)
    if r.status_code != 200 or r.json().get("result") != "ok\n":
        problems.append(f"the live sandbox no longer runs commands: {r.status_code} {r.text[:200]}")
    if server.proc is None or server.proc.poll() is not None:
        problems.append("the server process exited")
    if any("Traceback" in line for line in server.output):
        problems.append("the server logged a traceback")
    return problems


def _report(tally: Tally, duration: float, problems: list[str], n_ops: int) -> str:
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(tally.by_status.items()))
    lines = [
        f"- requests: {tally.requests} over {n_ops} operations in {duration:.1f} s "
        f"({tally.requests / duration:.0f} requests/s), slowest answer {tally.slowest:.2f} s",
        f"- status histogram: {statuses}",
        f"- 5xx answers or transport errors: {len(tally.failures)}",
        f"- server afterwards: {'healthy' if not problems else '; '.join(problems)}",
        "",
        "| operation | requests | statuses |",
        "|---|---:|---|",
    ]
    for name, counts in tally.by_operation.items():
        histogram = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
        lines.append(f"| `{name}` | {sum(counts.values())} | {histogram} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
