"""The OpenAPI 3 description of the server's routes, served at `GET /api/openapi.json`.

It needs a key like every other route (only `/health` is open): the document
holds nothing secret, but "every route but the health check is authenticated"
is a rule that needs no exceptions list. Request schemas of the /api lifecycle
and of execute/code-run are generated from the `cove.protocol` dataclasses, so
the document follows the models the server really validates with; the
session, PTY and interpreter shapes are written from the wire page (§4-§5),
which fixes them for the official SDK. `make fuzz` drives the server from
this document.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Union

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cove import protocol
from cove.wiremodel import WireModel, camel

JSON = dict[str, Any]
_PRIMITIVES: dict[Any, JSON] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    Any: {},
}


def type_schema(tp: Any, components: dict[str, JSON]) -> JSON:
    """The JSON schema of one field type (WireModels become `$ref`s)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        schema = type_schema(inner[0], components)
        if len(inner) < len(typing.get_args(tp)):
            # `null` is accepted wherever the model has a default for it.
            return {"anyOf": [schema, {"type": "null"}]}
        return schema
    if tp in _PRIMITIVES:
        return dict(_PRIMITIVES[tp])
    if origin is dict:
        _, value = typing.get_args(tp)
        return {"type": "object", "additionalProperties": type_schema(value, components)}
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": type_schema(item, components)}
    if isinstance(tp, type) and issubclass(tp, WireModel):
        return model_ref(tp, components)
    return {}


def model_ref(cls: type[WireModel], components: dict[str, JSON]) -> JSON:
    """Register `cls` (and the models it holds) under components; return its `$ref`."""
    name = cls.__name__
    if name not in components:
        components[name] = {}  # placeholder: breaks cycles
        hints = typing.get_type_hints(cls)
        props: JSON = {}
        required: list[str] = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if not f.init:
                continue
            wire = f.metadata.get("wire", camel(f.name))
            props[wire] = type_schema(hints[f.name], components)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(wire)
        schema: JSON = {"type": "object", "properties": props}
        if required:
            schema["required"] = required
        if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):
            schema["description"] = cls.__doc__.strip().splitlines()[0]
        components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: JSON, required: tuple[str, ...] = ()) -> JSON:
    schema: JSON = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


_STR = {"type": "string"}
_ENVS = {"type": "object", "additionalProperties": _STR}
# Wire page §4.1 and §5: fixed by what the official SDK sends.
SESSION_CREATE = _obj({"sessionId": _STR}, ("sessionId",))
SESSION_EXEC = _obj(
    {
        "command": _STR,
        "runAsync": {"type": "boolean"},
        "async": {"type": "boolean"},
        "suppressInputEcho": {"type": "boolean"},
    },
    ("command",),
)
COMMAND_INPUT = _obj({"data": _STR}, ("data",))
PTY_RESIZE = _obj(
    {
        "cols": {"type": "integer", "minimum": 1, "maximum": 1000},
        "rows": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    ("cols", "rows"),
)
CONTEXT_CREATE = _obj({"cwd": _STR, "language": _STR})
ERROR = _obj(
    {
        "message": _STR,
        "code": _STR,
        "source": _STR,
        "statusCode": {"type": "integer"},
        "path": _STR,
        "timestamp": _STR,
    },
    ("message", "code", "statusCode"),
)


def _param(name: str, where: str = "path", schema: JSON | None = None) -> JSON:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or _STR}


def _op(
    summary: str,
    params: list[JSON],
    body: JSON | None = None,
    ok: tuple[str, ...] = ("200",),
    response: JSON | None = None,
) -> JSON:
    op: JSON = {"summary": summary, "parameters": params, "responses": {}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    for status in ok:
        content = {"application/json": {"schema": response or {}}}
        op["responses"][status] = {"description": "success", "content": content}
    op["responses"]["default"] = {
        "description": "Daytona's error envelope",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return op


def build_openapi() -> JSON:
    """The whole document (OpenAPI 3.1, so schemas are plain JSON Schema)."""
    c: dict[str, JSON] = {"Error": ERROR}
    sandbox = model_ref(protocol.Sandbox, c)
    ref = [_param("sandboxIdOrName")]
    sid = [_param("sandboxId")]
    session = [*sid, _param("sessionId")]
    command = [*session, _param("commandId")]
    execute = model_ref(protocol.ExecuteResponse, c)
    list_query = [
        _param("labels", "query"),
        _param("name", "query"),
        _param("states", "query", {"type": "array", "items": _STR}),
    ]
    paths: JSON = {
        "/api/sandbox": {
            "post": _op(
                "Create a sandbox",
                [],
                model_ref(protocol.CreateSandboxRequest, c),
                ("200",),
                sandbox,
            ),
            "get": _op(
                "List sandboxes", list_query, None, ("200",), model_ref(protocol.SandboxList, c)
            ),
        },
        "/api/sandbox/{sandboxIdOrName}": {
            "get": _op("Get a sandbox", ref, response=sandbox),
            "delete": _op("Delete a sandbox", ref, response=sandbox),
        },
        "/api/sandbox/{sandboxIdOrName}/start": {"post": _op("Start", ref, response=sandbox)},
        "/api/sandbox/{sandboxIdOrName}/stop": {
            "post": _op(
                "Stop",
                [*ref, _param("force", "query", {"type": "boolean"})],
                None,
                ("200",),
                sandbox,
            )
        },
        "/api/sandbox/{sandboxIdOrName}/toolbox-proxy-url": {
            "get": _op("Toolbox proxy URL", ref, response=_obj({"url": _STR}, ("url",)))
        },
        "/api/openapi.json": {"get": _op("This document", [])},
        "/toolbox/{sandboxId}/version": {"get": _op("Agent version", sid)},
        "/toolbox/{sandboxId}/work-dir": {"get": _op("Working directory", sid)},
        "/toolbox/{sandboxId}/user-home-dir": {"get": _op("Home directory", sid)},
        "/toolbox/{sandboxId}/process/execute": {
            "post": _op(
                "Run a command to completion",
                sid,
                model_ref(protocol.ExecuteRequest, c),
                response=execute,
            )
        },
        "/toolbox/{sandboxId}/process/code-run": {
            "post": _op(
                "Run code to completion",
                sid,
                model_ref(protocol.CodeRunRequest, c),
                response=model_ref(protocol.CodeRunResponse, c),
            )
        },
        "/toolbox/{sandboxId}/process/session": {
            "post": _op("Create a session", sid, SESSION_CREATE, ("200", "201")),
            "get": _op("List sessions", sid),
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}": {
            "get": _op("Get a session", session),
            "delete": _op("Delete a session", session, ok=("200", "204")),
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/exec": {
            "post": _op("Run a command in a session", session, SESSION_EXEC, ("200", "202"))
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}": {
            "get": _op("Get a session command", command)
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/logs": {
            "get": _op("A command's logs", command)
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/input": {
            "post": _op("Send stdin to a command", command, COMMAND_INPUT, ("200", "204"))
        },
        "/toolbox/{sandboxId}/process/session/entrypoint": {"get": _op("Entrypoint session", sid)},
        "/toolbox/{sandboxId}/process/session/entrypoint/logs": {
            "get": _op("Entrypoint logs", sid)
        },
        "/toolbox/{sandboxId}/process/pty": {"get": _op("List PTY sessions", sid)},
        "/toolbox/{sandboxId}/process/pty/{sessionId}": {
            "get": _op("Get a PTY session", session),
            "delete": _op("Kill a PTY session", session, ok=("200", "204")),
        },
        "/toolbox/{sandboxId}/process/pty/{sessionId}/resize": {
            "post": _op("Resize a PTY", session, PTY_RESIZE)
        },
        "/toolbox/{sandboxId}/process/interpreter/context": {
            "post": _op("Create an interpreter context", sid, CONTEXT_CREATE),
            "get": _op("List interpreter contexts", sid),
        },
        "/toolbox/{sandboxId}/process/interpreter/context/{contextId}": {
            "delete": _op(
                "Delete an interpreter context", [*sid, _param("contextId")], ok=("200", "204")
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cove",
            "version": "0.1",
            "description": (
                "Daytona-compatible sandbox API. Every route but /health takes "
                "'Authorization: Bearer <key>'. WebSocket routes (log follow, PTY, "
                "interpreter execute) are not described here."
            ),
        },
        "components": {
            "schemas": c,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


async def openapi_endpoint(_: Request) -> Response:
    return JSONResponse(_document())


@functools.cache
def _document() -> JSON:
    return build_openapi()
