"""The SDK's error tree, each branch raised by a real server: a timed-out exec
is a `CommandTimeout` that Daytona-style `except ProcessTimeout` code catches,
a taken name is a `Conflict`, input to a finished command is `Gone`."""

from __future__ import annotations

import uuid

import pytest

from cove.sdk import (
    CommandTimeout,
    Conflict,
    Cove,
    CoveError,
    Gone,
    ProcessTimeout,
    Sandbox,
    SessionExecuteRequest,
    Timeout,
)


def test_a_command_timeout_is_caught_as_a_process_timeout(csb: Sandbox) -> None:
    try:
        csb.process.exec("echo part; sleep 30", timeout=1)
    except ProcessTimeout as err:  # what code written for Daytona's SDK catches
        caught: ProcessTimeout = err
    else:
        raise AssertionError("no timeout raised")
    assert type(caught) is CommandTimeout
    assert isinstance(caught, Timeout) and isinstance(caught, CoveError)
    assert caught.status == 408 and caught.response.stdout == "part\n"


def test_a_taken_name_is_a_conflict(cove: Cove) -> None:
    name = f"taken-{uuid.uuid4().hex[:8]}"
    first = cove.create(name=name)
    try:
        with pytest.raises(Conflict) as info:
            cove.create(name=name)
        assert info.value.status == 409 and name in str(info.value)
        assert [s.id for s in cove.list() if s.name == name] == [first.id]
    finally:
        first.delete()


def test_input_to_a_finished_command_is_gone(csb: Sandbox) -> None:
    session = f"gone-{uuid.uuid4().hex[:8]}"
    csb.process.create_session(session)
    try:
        with pytest.raises(Conflict):  # the same session id again
            csb.process.create_session(session)
        done = csb.process.execute_session_command(session, SessionExecuteRequest(command="true"))
        assert done.exit_code == 0
        with pytest.raises(Gone) as info:
            csb.process.send_session_command_input(session, done.cmd_id, "late\n")
        assert info.value.status == 410 and isinstance(info.value, CoveError)
    finally:
        csb.process.delete_session(session)
