"""Wire models, the error tree and the seccomp program: the pieces with no I/O."""

from __future__ import annotations

import struct

import pytest

from cove.runtime.local.seccomp import ARCHES, DENIED, build_filter
from cove.wire.errors import (
    BadRequest,
    CoveError,
    InternalError,
    NotFound,
    ProcessTimeout,
    SandboxError,
    from_envelope,
    to_envelope,
)
from cove.wire.protocol import CreateSandboxRequest, ExecuteRequest, ExecuteResponse


def test_from_wire_reads_camel_case_and_checks_types() -> None:
    req = ExecuteRequest.from_wire(
        {"command": "ls", "envs": {"A": "1"}, "timeout": 5, "maxOutputBytes": 9}
    )
    assert (req.command, req.envs, req.timeout, req.max_output_bytes) == ("ls", {"A": "1"}, 5.0, 9)
    with pytest.raises(BadRequest, match="field 'timeout' must be a number, got str"):
        ExecuteRequest.from_wire({"command": "ls", "timeout": "5"})
    with pytest.raises(BadRequest, match="field 'command' is required"):
        ExecuteRequest.from_wire({"cwd": "/"})
    with pytest.raises(BadRequest, match=r"'envs\.A' must be a string"):
        ExecuteRequest.from_wire({"command": "ls", "envs": {"A": 1}})
    with pytest.raises(BadRequest, match="body must be a JSON object"):
        ExecuteRequest.from_wire(["ls"])


def test_booleans_are_not_integers() -> None:
    with pytest.raises(BadRequest, match="'cpu' must be an integer, got bool"):
        CreateSandboxRequest.from_wire({"cpu": True})


def test_to_wire_is_camel_case() -> None:
    wire = ExecuteResponse(exit_code=1, result="x", timed_out=True).to_wire()
    assert wire == {
        "exitCode": 1,
        "result": "x",
        "stdout": "",
        "stderr": "",
        "timedOut": True,
        "truncated": False,
    }


def test_errors_round_trip_through_the_envelope() -> None:
    for err in (NotFound("gone"), BadRequest("bad"), SandboxError("down")):
        env = to_envelope(err, "/x", "DAYTONA_API")
        back = from_envelope(err.status, env)
        assert type(back) is type(err)
        assert back.message == err.message
    timeout = ProcessTimeout("slow", body={"stdout": "partial"})
    back = from_envelope(408, to_envelope(timeout, "/x", "DAYTONA_DAEMON"))
    assert isinstance(back, ProcessTimeout)
    assert back.body["stdout"] == "partial"
    assert isinstance(from_envelope(502, "oops", "oops"), InternalError)
    assert isinstance(from_envelope(418, {}), CoveError)


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_seccomp_program_is_well_formed(machine: str) -> None:
    prog = build_filter(machine)
    assert len(prog) % 8 == 0
    n = len(prog) // 8
    assert n < 4096  # the kernel's BPF_MAXINSNS
    instructions = [struct.unpack("=HBBI", prog[i * 8 : i * 8 + 8]) for i in range(n)]
    # Every jump lands inside the program, and it ends in a return.
    for i, (code, jt, jf, _) in enumerate(instructions):
        if code & 0x07 == 0x05:  # BPF_JMP class
            assert i + 1 + max(jt, jf) < n
    assert instructions[-1][0] == 0x06
    denied = {k for (code, _, _, k) in instructions if code == 0x15}
    _, numbers = ARCHES[machine]
    assert {numbers[name] for name in DENIED} <= denied
