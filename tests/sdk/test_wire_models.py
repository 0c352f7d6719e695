"""The SDK reads every answer through the wire models (`cove.wire.protocol`):
one class where the SDK and the wire mean the same thing, and nothing the wire
carries lost on the way (the session execute answer's `timed_out` and
`truncated`, through a real server)."""

from __future__ import annotations

import asyncio
import inspect
import uuid

import pytest

import cove.sdk.models as models
from cove import AsyncCove, Cove, Sandbox
from cove.sdk import CommandTimeout, SessionExecuteRequest, SessionExecuteResponse
from cove.sdk._base import Call
from cove.wire import protocol
from cove.wire.errors import InternalError
from cove.wire.model import WireModel
from tests.serverproc import ServerProcess


@pytest.mark.parametrize("name", ["Command", "Session", "InterpreterContext", "PtySessionInfo"])
def test_the_same_thing_is_one_class(name: str) -> None:
    assert getattr(models, name) is getattr(protocol, name)


def test_every_model_parses_through_the_wire() -> None:
    """A class with `from_wire` is a wire model, or hands the JSON to one."""
    for name, cls in inspect.getmembers(models, inspect.isclass):
        if cls.__module__ != models.__name__ or not hasattr(cls, "from_wire"):
            continue
        if issubclass(cls, WireModel):
            continue
        source = inspect.getsource(cls.from_wire)
        assert ".from_wire(" in source and ".get(" not in source, name


def test_requests_are_written_by_the_wire_model() -> None:
    req = SessionExecuteRequest("ls", var_async=True, env={"A": "1"}, timeout=3)
    assert req.to_wire() == {"command": "ls", "runAsync": True, "envs": {"A": "1"}, "timeout": 3}
    assert SessionExecuteRequest("ls").to_wire() == {"command": "ls", "envs": {}}


def test_an_answer_that_does_not_fit_is_the_servers_fault() -> None:
    call = Call("GET", "http://x/session", "get session", protocol.Session.from_wire)
    with pytest.raises(InternalError, match=r"get session failed: .*'sessionId' is required"):
        call.finish(200, '{"commands": []}')
    assert call.finish(200, '{"sessionId": "s"}') == protocol.Session("s", [])


def test_session_execute_answer_says_truncated(csb: Sandbox) -> None:
    p, sid = csb.process, f"wire-{uuid.uuid4().hex[:8]}"
    p.create_session(sid)
    # Past the server's 10 MiB per-field cap for JSON answers.
    big = "head -c 11000000 /dev/zero | tr '\\0' y; echo end >&2"
    r = p.execute_session_command(sid, SessionExecuteRequest(big))
    assert isinstance(r, SessionExecuteResponse)
    assert (r.exit_code, r.truncated, r.timed_out, r.stderr) == (0, True, False, "end\n")
    assert 0 < len(r.stdout) < 11_000_000
    assert p.get_session_command_logs(sid, r.cmd_id).truncated is True
    small = p.execute_session_command(sid, SessionExecuteRequest("echo ok"))
    assert (small.stdout, small.truncated, small.timed_out) == ("ok\n", False, False)
    p.delete_session(sid)


def test_session_execute_timeout_carries_the_partial_answer(csb: Sandbox) -> None:
    p, sid = csb.process, f"wire-{uuid.uuid4().hex[:8]}"
    p.create_session(sid)
    with pytest.raises(CommandTimeout) as info:
        p.execute_session_command(sid, SessionExecuteRequest("echo before; sleep 30", timeout=1))
    r = info.value.response
    assert isinstance(r, SessionExecuteResponse)
    assert (r.timed_out, r.stdout, r.truncated) == (True, "before\n", False)
    assert p.get_session_command(sid, r.cmd_id).timed_out is True
    p.delete_session(sid)


def test_async_face_reads_the_same_flags(server: ServerProcess, cove: Cove, csb: Sandbox) -> None:
    async def main() -> SessionExecuteResponse:
        async with AsyncCove(api_url=server.api_url, api_key=server.key, keep=True) as c:
            p = (await c.get(csb.id)).process
            sid = f"wire-{uuid.uuid4().hex[:8]}"
            await p.create_session(sid)
            try:
                req = SessionExecuteRequest("echo a; sleep 30", timeout=1)
                with pytest.raises(CommandTimeout) as info:
                    await p.execute_session_command(sid, req)
                return info.value.response  # type: ignore[no-any-return]
            finally:
                await p.delete_session(sid)

    r = asyncio.run(main())
    assert isinstance(r, SessionExecuteResponse) and (r.timed_out, r.stdout) == (True, "a\n")
