"""The parts both faces share, checked without a server: the two faces expose
the same methods with the same signatures, the log demultiplexer survives
markers split across frames, and interpreter close codes mean what §5 says."""

from __future__ import annotations

import inspect

import pytest

from cove.sdk import (
    AsyncCodeInterpreter,
    AsyncCove,
    AsyncProcess,
    AsyncSandbox,
    CodeInterpreter,
    CodeTimeout,
    Cove,
    CoveError,
    Process,
    Sandbox,
)
from cove.sdk._streams import InterpreterRun, LogDemux

PAIRS = [
    (Cove, AsyncCove),
    (Sandbox, AsyncSandbox),
    (Process, AsyncProcess),
    (CodeInterpreter, AsyncCodeInterpreter),
]
# Coroutines on both faces, as in Daytona's sync SDK.
ALWAYS_ASYNC = {"get_session_command_logs_async", "get_entrypoint_logs_async"}
# Daytona's async face takes `on_data` when it opens a PTY (the sync handle is iterated).
ASYNC_ONLY_PARAMS = {"on_data"}


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    # Annotations differ only by the face's own class names (Sandbox/AsyncSandbox).
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize(("sync", "asynchronous"), PAIRS, ids=lambda c: c.__name__)
def test_both_faces_have_the_same_methods(sync: type, asynchronous: type) -> None:
    sync_methods, async_methods = _public(sync), _public(asynchronous)
    assert sorted(sync_methods) == sorted(async_methods)
    for name, method in sync_methods.items():
        twin = async_methods[name]
        twin_shape = [
            p
            for p in _shape(inspect.signature(twin))
            if p[0] not in ASYNC_ONLY_PARAMS  # type: ignore[arg-type]
        ]
        assert _shape(inspect.signature(method)) == twin_shape, name  # type: ignore[arg-type]
        assert inspect.iscoroutinefunction(twin), name
        assert inspect.iscoroutinefunction(method) == (name in ALWAYS_ASYNC), name


def test_demux_handles_markers_split_across_frames() -> None:
    demux = LogDemux()
    frames = [b"\x01\x01\x01li", b"ne2\n\x02\x02", b"\x02err2\n\x01", b"\x01\x01o\xc3", b"\xa9\n"]
    chunks = [c for f in frames for c in demux.feed(f)] + demux.flush()
    text = {"stdout": "", "stderr": ""}
    for channel, piece in chunks:
        text[channel] += piece
    assert text == {"stdout": "line2\noé\n", "stderr": "err2\n"}
    assert demux.position == len("line2\nerr2\noé\n".encode())


def test_demux_flushes_a_held_back_byte_that_was_not_a_marker() -> None:
    demux = LogDemux(offset=10)
    assert demux.feed(b"\x01\x01\x01ab\x01") == [("stdout", "ab")]
    assert demux.flush() == [("stdout", "\x01")]
    assert demux.position == 13


def test_interpreter_frames_and_close_codes() -> None:
    run = InterpreterRun()
    run.feed('{"type": "stdout", "text": "a"}')
    run.feed('{"type": "result", "data": {"text/plain": "2"}, "isMainResult": true}')
    run.feed('{"type": "error", "name": "ValueError", "value": "boom"}')
    run.feed('{"type": "control", "text": "completed"}')
    result = run.outcome(1000, "")
    assert result.stdout == "a" and result.error is not None and result.error.name == "ValueError"
    assert result.results[0].is_main_result and result.results[0].text == "2"
    with pytest.raises(CodeTimeout) as info:
        run.outcome(4008, "timeout")
    assert info.value.result.stdout == "a"
    with pytest.raises(CoveError, match="close code 4404"):
        run.outcome(4404, "no such context")


def test_create_accepts_daytonas_params_objects() -> None:
    from daytona import CreateSandboxFromImageParams, CreateSandboxFromSnapshotParams, Resources

    from cove.sdk.client import merge_params

    snap = CreateSandboxFromSnapshotParams(language="typescript", env_vars={"A": "1"})
    p = merge_params(snap, {"name": "n", "cpu": None})
    assert (p.language, p.env_vars, p.name, p.cpu) == ("typescript", {"A": "1"}, "n", None)
    image = CreateSandboxFromImageParams(image="debian", resources=Resources(cpu=2, memory=4))
    p = merge_params(image, {"memory": 2})
    assert (p.cpu, p.memory, p.disk) == (2, 2, None)


def test_configuration_errors_come_before_any_io(monkeypatch: pytest.MonkeyPatch) -> None:
    from cove.sdk import AuthError, BadRequest

    monkeypatch.setenv("COVE_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.delenv("COVE_API_KEY", raising=False)
    with pytest.raises(AuthError, match="COVE_API_KEY"):
        Cove()
    with pytest.raises(BadRequest, match="http://"):
        Cove(api_url="127.0.0.1:3000/api", api_key="k")
    with Cove(api_key="k") as c:  # the trailing slash is dropped, as the wire page requires
        assert c.api_url == "http://127.0.0.1:9/api" and c.embedded is None
