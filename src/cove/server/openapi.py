"""The OpenAPI 3 description of the server's routes, served at `GET /api/openapi.json`.

It needs a key like every other route (only `/health` is open): the document
holds nothing secret, but "every route but the health check is authenticated"
is a rule that needs no exceptions list. Request and response schemas are
generated from the `cove.wire.protocol` dataclasses, so the document follows the
models the server and the agent really validate with (their shapes are the
wire page's §3-§5). WebSocket routes are left out: OpenAPI cannot say much
about them. `make fuzz` drives the server from this document.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Union

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cove.server.openapi_control import control_paths
from cove.wire import protocol
from cove.wire.model import WireModel, camel
from cove.wire.protocol import git as gitwire
from cove.wire.protocol.ssh import SshAccess, SshAccessValidation

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


_AMOUNTS = {"type": "object", "additionalProperties": {"type": "number"}}
NODE = _obj(
    {
        "id": _STR,
        "alive": {"type": "boolean"},
        "capacity": _AMOUNTS,
        "used": _AMOUNTS,
        "free": _AMOUNTS,
        "sandboxes": {"type": "integer"},
    },
    ("id", "alive", "capacity", "used", "free", "sandboxes"),
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
    context = [*sid, _param("contextId")]

    def m(cls: type[WireModel]) -> JSON:
        return model_ref(cls, c)

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
        **_ssh_paths(ref, c),
        "/api/sandbox/{sandboxIdOrName}/network-settings": {
            "post": _op(
                "Update the egress policy",
                ref,
                model_ref(protocol.UpdateNetworkSettings, c),
                ("200",),
                sandbox,
            ),
            "get": _op("The effective egress policy", ref, response=m(protocol.NetworkSettings)),
        },
        "/api/nodes": {
            "get": _op(
                "Hosts that run sandboxes: capacity, used, free, sandboxes held",
                [],
                response={"type": "array", "items": NODE},
            )
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
            "post": _op("Create a session", sid, m(protocol.CreateSessionRequest), ("200", "201")),
            "get": _op(
                "List sessions", sid, response={"type": "array", "items": m(protocol.Session)}
            ),
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}": {
            "get": _op("Get a session", session, response=m(protocol.Session)),
            "delete": _op("Delete a session", session, ok=("200", "204")),
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/exec": {
            "post": _op(
                "Run a command in a session",
                session,
                m(protocol.SessionExecuteRequest),
                ("200", "202"),
                m(protocol.SessionExecuteResponse),
            )
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}": {
            "get": _op("Get a session command", command, response=m(protocol.Command))
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/logs": {
            "get": _op("A command's logs", command, response=m(protocol.SessionCommandLogs))
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/input": {
            "post": _op(
                "Send stdin to a command", command, m(protocol.SessionInputRequest), ("200", "204")
            )
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/kill": {
            "post": _op(
                "Signal or kill a command's tree",
                command,
                m(protocol.CommandSignalRequest),
                ("200", "204"),
            )
        },
        "/toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/stdin/close": {
            "post": _op("Close a command's stdin (EOF)", command, ok=("200", "204"))
        },
        "/toolbox/{sandboxId}/process/session/entrypoint": {
            "get": _op("Entrypoint session", sid, response=m(protocol.Session))
        },
        "/toolbox/{sandboxId}/process/session/entrypoint/logs": {
            "get": _op("Entrypoint logs", sid, response=m(protocol.SessionCommandLogs))
        },
        "/toolbox/{sandboxId}/process/pty": {
            "post": _op("Create a PTY session", sid, m(protocol.PtyCreateRequest), ("200", "201")),
            "get": _op("List PTY sessions", sid, response=m(protocol.PtySessionList)),
        },
        "/toolbox/{sandboxId}/process/pty/{sessionId}": {
            "get": _op("Get a PTY session", session, response=m(protocol.PtySessionInfo)),
            "delete": _op("Kill a PTY session", session, ok=("200", "204")),
        },
        "/toolbox/{sandboxId}/process/pty/{sessionId}/resize": {
            "post": _op(
                "Resize a PTY",
                session,
                m(protocol.PtyResizeRequest),
                response=m(protocol.PtySessionInfo),
            )
        },
        "/toolbox/{sandboxId}/process/interpreter/context": {
            "post": _op(
                "Create an interpreter context",
                sid,
                m(protocol.CreateContextRequest),
                response=m(protocol.InterpreterContext),
            ),
            "get": _op("List interpreter contexts", sid, response=m(protocol.ContextList)),
        },
        "/toolbox/{sandboxId}/process/interpreter/context/{contextId}": {
            "delete": _op("Delete an interpreter context", context, ok=("200", "204"))
        },
        "/toolbox/{sandboxId}/process/interpreter/context/{contextId}/interrupt": {
            "post": _op(
                "Interrupt a context's run", context, response=m(protocol.InterruptResponse)
            )
        },
    }
    paths.update(_file_paths(sid, m))
    paths.update(_git_paths(sid, m))
    paths.update(_port_env_paths(sid, m))
    paths.update(control_paths(m, _op, _param, sandbox, ref, sid))
    paths.update(_preview_paths(ref, sandbox, m))
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


def _preview_paths(ref: list[JSON], sandbox: JSON, m: Any) -> JSON:
    """Preview links (`server/preview`): 400 for a port outside 1-65535, 404 unknown sandbox."""
    port = [*ref, _param("port", schema={"type": "integer", "minimum": 1, "maximum": 65535})]
    base = "/api/sandbox/{sandboxIdOrName}/ports/{port}"
    seconds = _param("expiresInSeconds", "query", {"type": "integer", "minimum": 1})
    traffic = _op(
        "A sandbox port's app through its preview link (any method; WebSockets too). "
        "Credential: the 'x-daytona-preview-token' header, ?token= once (sets a cookie), "
        "none for a public sandbox, or a signed URL's token in place of the sandbox id. "
        "401 wrong/expired credential, 404 unknown, 502 nothing listening on the port.",
        [_param("sandboxId"), port[1], _param("path")],
    )
    traffic["security"] = []
    return {
        f"{base}/preview-url": {
            "get": _op("Preview link to a port", port, response=m(protocol.PortPreviewUrl))
        },
        f"{base}/signed-preview-url": {
            "get": _op(
                "Signed, expiring preview link (default 60 s)",
                [*port, seconds],
                response=m(protocol.SignedPortPreviewUrl),
            )
        },
        f"{base}/signed-preview-url/{{token}}/expire": {
            "post": _op("Expire a signed preview link now", [*port, _param("token")])
        },
        "/api/sandbox/{sandboxIdOrName}/public/{isPublic}": {
            "post": _op(
                "Make previews public (no token) or private",
                [*ref, _param("isPublic", schema={"type": "boolean"})],
                response=sandbox,
            )
        },
        "/preview/{sandboxId}/{port}/{path}": {"get": traffic},
    }


def _ssh_paths(ref: list[JSON], c: dict[str, JSON]) -> JSON:
    minutes = {"type": "integer", "minimum": 1, "default": 60}
    token = [_param("token", "query")]
    return {
        "/api/sandbox/{sandboxIdOrName}/ssh-access": {
            "post": _op(
                "Create an SSH access token (`ssh TOKEN@HOST -p PORT`)",
                [*ref, _param("expiresInMinutes", "query", minutes)],
                response=model_ref(SshAccess, c),
            ),
            "delete": _op(
                "Revoke one SSH access token, or all of the sandbox's without `token`",
                [*ref, *token],
                response=model_ref(protocol.Sandbox, c),
            ),
        },
        "/api/sandbox/ssh-access/validate": {
            "get": _op(
                "Whether an SSH access token opens a sandbox now",
                [{**token[0], "required": True}],
                response=model_ref(SshAccessValidation, c),
            )
        },
    }


def _file_paths(sid: list[JSON], m: Any) -> JSON:
    """`/files/...` (wire page: Daytona's toolbox file system API, run by the agent)."""
    path = _param("path", "query")
    path["required"] = True
    q = functools.partial(_param, where="query")
    info = m(protocol.FileInfo)
    bytes_out = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    download = _op(
        "Download a file (one `Range` honoured: 206)", [*sid, path, _param("Range", "header")]
    )
    download["responses"]["200"]["content"] = bytes_out
    download["responses"]["206"] = {"description": "the range asked for", "content": bytes_out}
    bulk = _op(
        "Download files: multipart/form-data, a `file` or an `error` part per path",
        sid,
        m(protocol.FilesDownloadRequest),
    )
    bulk["responses"]["200"]["content"] = {"multipart/form-data": {"schema": {"type": "object"}}}
    upload = _op(
        "Upload files: multipart `files[i].path` then `files[i].file`, streamed; all or none "
        "land (507 when the disk cannot hold the body)",
        sid,
        response=m(protocol.UploadFilesResponse),
    )
    upload["requestBody"] = {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object"}}},
    }
    return {
        "/toolbox/{sandboxId}/files": {
            "get": _op(
                "List a directory (`depth` levels)",
                [*sid, path, q("depth", schema={"type": "integer", "minimum": 1})],
                response={"type": "array", "items": info},
            ),
            "delete": _op(
                "Delete a file or directory (a non-empty one needs recursive=true: else 400)",
                [*sid, path, q("recursive", schema={"type": "boolean"})],
                ok=("204",),
            ),
        },
        "/toolbox/{sandboxId}/files/info": {
            "get": _op("A file's details (404 names a missing path)", [*sid, path], response=info)
        },
        "/toolbox/{sandboxId}/files/folder": {
            "post": _op("Create a directory (`mkdir -p`)", [*sid, path, q("mode")], ok=("201",))
        },
        "/toolbox/{sandboxId}/files/move": {
            "post": _op(
                "Move or rename (409 when the destination exists)",
                [*sid, q("source"), q("destination")],
            )
        },
        "/toolbox/{sandboxId}/files/permissions": {
            "post": _op(
                "Change mode (octal), owner, group", [*sid, path, q("mode"), q("owner"), q("group")]
            )
        },
        "/toolbox/{sandboxId}/files/find": {
            "get": _op(
                "Lines holding the literal text `pattern`, under `path`",
                [*sid, path, q("pattern")],
                response={"type": "array", "items": m(protocol.Match)},
            )
        },
        "/toolbox/{sandboxId}/files/search": {
            "get": _op(
                "Paths under `path` whose name matches the glob `pattern`",
                [*sid, path, q("pattern")],
                response=m(protocol.SearchFilesResponse),
            )
        },
        "/toolbox/{sandboxId}/files/replace": {
            "post": _op(
                "Replace literal text in files",
                sid,
                m(protocol.ReplaceRequest),
                response={"type": "array", "items": m(protocol.ReplaceResult)},
            )
        },
        "/toolbox/{sandboxId}/files/download": {"get": download},
        "/toolbox/{sandboxId}/files/bulk-download": {"post": bulk},
        "/toolbox/{sandboxId}/files/bulk-upload": {"post": upload},
    }


def _git_paths(sid: list[JSON], m: Any) -> JSON:
    """`/git/...`: the real `git` in the sandbox, in the repository at `path`
    (404 names a missing one; git's refusals are 400s carrying its stderr)."""
    repo = [*sid, _param("path", "query")]
    repo[-1]["required"] = True
    g = gitwire
    config_query = [*sid, *(_param(n, "query") for n in ("key", "scope", "path"))]
    config_query[1]["required"] = True

    def post(summary: str, body: type[WireModel], ok: str = "200", response: Any = None) -> JSON:
        return _op(summary, sid, m(body), (ok,), m(response) if response else None)

    def get(summary: str, params: list[JSON], response: JSON) -> JSON:
        return _op(summary, params, response=response)

    t = "/toolbox/{sandboxId}/git"
    return {
        f"{t}/clone": {
            "post": post(
                "Clone (credentials used for this call only, never stored)", g.GitCloneRequest
            )
        },
        f"{t}/init": {"post": post("Create a repository", g.GitInitRequest, "201")},
        f"{t}/status": {"get": get("Branch and file states", repo, m(g.GitStatus))},
        f"{t}/history": {
            "get": get(
                "Commits, newest first", repo, {"type": "array", "items": m(g.GitCommitInfo)}
            )
        },
        f"{t}/add": {"post": post("Stage files", g.GitAddRequest)},
        f"{t}/commit": {
            "post": post("Commit staged changes", g.GitCommitRequest, response=g.GitCommitResponse)
        },
        f"{t}/reset": {"post": post("Reset HEAD, the index or files", g.GitResetRequest)},
        f"{t}/restore": {"post": post("Restore files", g.GitRestoreRequest)},
        f"{t}/branches": {
            "get": get("Local branches and the current one", repo, m(g.ListBranchResponse)),
            "post": post("Create a branch at HEAD and check it out", g.GitBranchRequest, "201"),
            "delete": post("Delete a branch", g.GitBranchRequest, "204"),
        },
        f"{t}/checkout": {"post": post("Check out a branch", g.GitCheckoutRequest)},
        f"{t}/pull": {"post": post("Pull", g.GitPullRequest)},
        f"{t}/push": {"post": post("Push (HEAD unless `branch`)", g.GitPushRequest)},
        f"{t}/remotes": {
            "get": get("Remotes and their URLs", repo, m(g.ListRemotesResponse)),
            "post": post(
                "Add (or with `overwrite` replace) a remote", g.GitAddRemoteRequest, "201"
            ),
        },
        f"{t}/config": {
            "get": get("A config value (null when unset)", config_query, m(g.GitConfigResponse)),
            "post": post("Set a config value", g.GitSetConfigRequest),
        },
        f"{t}/config/user": {
            "post": post("Set user.name and user.email", g.GitConfigureUserRequest)
        },
        f"{t}/credentials": {
            "post": post(
                "Store credentials in plain text in the user's credential store",
                g.GitAuthenticateRequest,
            )
        },
    }


def _port_env_paths(sid: list[JSON], m: Any) -> JSON:
    """Listening ports and the environment of processes started from now on."""
    port = _param("port", schema={"type": "integer", "minimum": 1, "maximum": 65535})
    env = {"type": "object", "additionalProperties": _STR}
    return {
        "/toolbox/{sandboxId}/port": {
            "get": _op("TCP ports listening in the sandbox", sid, response=m(gitwire.PortList))
        },
        "/toolbox/{sandboxId}/port/{port}/in-use": {
            "get": _op(
                "Whether a TCP port listens", [*sid, port], response=m(gitwire.IsPortInUseResponse)
            )
        },
        "/toolbox/{sandboxId}/env": {
            "post": _op(
                "Change the environment of processes started from now on",
                sid,
                m(gitwire.UpdateEnvRequest),
                response=env,
            )
        },
    }


async def openapi_endpoint(_: Request) -> Response:
    return JSONResponse(_document())


@functools.cache
def _document() -> JSON:
    return build_openapi()
