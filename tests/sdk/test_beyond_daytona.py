"""What the Cove SDK exposes beyond Daytona's: separate streams, partial output on
timeout, truncation, rich results, interrupts, killing a session command,
closing its stdin and resuming a log stream; and errors that say what to do."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cove import AsyncCove, Cove, Sandbox
from cove.sdk import (
    AuthError,
    CodeTimeout,
    CommandTimeout,
    CoveError,
    ExecutionResult,
    NotFound,
    RichResult,
    SandboxError,
    ServerUnreachable,
    SessionExecuteRequest,
)
from tests.serverproc import ServerProcess, free_port


def test_exec_keeps_streams_apart(csb: Sandbox) -> None:
    r = csb.process.exec("echo out; echo err >&2; exit 4")
    assert (r.exit_code, r.stdout, r.stderr) == (4, "out\n", "err\n")
    assert sorted(r.result.splitlines()) == ["err", "out"]
    assert r.timed_out is False and r.truncated is False


def test_exec_timeout_raises_with_the_partial_output(csb: Sandbox) -> None:
    with pytest.raises(CommandTimeout) as info:
        csb.process.exec("echo before; echo e >&2; sleep 30", timeout=1)
    err = info.value
    assert err.response.timed_out is True
    assert (err.response.stdout, err.response.stderr) == ("before\n", "e\n")
    assert "timed out" in str(err) and err.status == 408


@pytest.mark.timeout(300)
def test_code_run_timeout_and_truncation(csb: Sandbox) -> None:
    with pytest.raises(CommandTimeout) as info:
        csb.process.code_run("import time\nprint('x', flush=True)\ntime.sleep(30)", timeout=1)
    assert info.value.response.stdout == "x\n"
    big = csb.process.exec("head -c 20000000 /dev/zero | tr '\\0' y")
    assert big.truncated is True and big.exit_code == 0
    assert 0 < len(big.stdout) < 20_000_000


@pytest.mark.timeout(300)
def test_rich_results_and_main_result(csb: Sandbox) -> None:
    seen: list[RichResult] = []
    result = csb.code_interpreter.run_code(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n6 * 7",
        on_result=seen.append,
    )
    assert result.error is None
    main = [r for r in result.results if r.is_main_result]
    assert len(main) == 1 and main[0].data["text/plain"] == "42" and main[0].text == "42"
    images = [r for r in result.results if r.png]
    assert images and not images[0].is_main_result
    assert seen == result.results
    html = csb.code_interpreter.run_code("import pandas as pd\npd.DataFrame({'a': [1]})")
    assert "<table" in (html.results[0].html or "")


def test_interpreter_timeout_keeps_state(csb: Sandbox) -> None:
    csb.code_interpreter.run_code("kept = 'yes'")
    with pytest.raises(CodeTimeout) as info:
        csb.code_interpreter.run_code("print('start', flush=True)\nwhile True: pass", timeout=1)
    assert info.value.result.stdout == "start\n" and info.value.result.interrupted
    assert csb.code_interpreter.run_code("print(kept)").stdout == "yes\n"


def test_explicit_interrupt(csb: Sandbox) -> None:
    ctx = csb.code_interpreter.create_context()
    started = threading.Event()
    outcome: list[ExecutionResult] = []

    def run() -> None:
        outcome.append(
            csb.code_interpreter.run_code(
                "n = 5\nprint('go', flush=True)\nimport time\ntime.sleep(60)",
                context=ctx,
                on_stdout=lambda m: started.set(),
            )
        )

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(20)
    csb.code_interpreter.interrupt(ctx)
    worker.join(20)
    result = outcome[0]
    assert result.error is not None and result.error.name == "KeyboardInterrupt"
    assert csb.code_interpreter.run_code("print(n)", context=ctx).stdout == "5\n"
    csb.code_interpreter.delete_context(ctx)


def test_kill_and_stdin_close_of_session_commands(csb: Sandbox) -> None:
    p = csb.process
    p.create_session("extras")
    try:
        sleeper = p.execute_session_command("extras", SessionExecuteRequest("sleep 60", True))
        killed = p.kill_session_command("extras", sleeper.cmd_id)
        assert killed.id == sleeper.cmd_id
        cat = p.execute_session_command("extras", SessionExecuteRequest("wc -c", run_async=True))
        p.send_session_command_input("extras", cat.cmd_id, "hello", raw=True)
        p.close_session_command_input("extras", cat.cmd_id)
        out: list[str] = []
        p.follow_session_command_logs("extras", cat.cmd_id, out.append, out.append)
        assert "".join(out).strip().endswith("5")
        assert p.get_session_command("extras", cat.cmd_id).exit_code == 0
        assert p.get_session_command("extras", sleeper.cmd_id).exit_code == 137
    finally:
        p.delete_session("extras")


def test_log_stream_resumes_from_an_offset(csb: Sandbox) -> None:
    p = csb.process
    p.create_session("resume")
    try:
        cmd = p.execute_session_command(
            "resume", SessionExecuteRequest("echo one; echo two; echo three")
        )
        first: list[str] = []
        end = p.follow_session_command_logs("resume", cmd.cmd_id, first.append, first.append)
        assert end == len("one\ntwo\nthree\n") and "".join(first) == "one\ntwo\nthree\n"
        rest: list[str] = []
        assert p.follow_session_command_logs(
            "resume", cmd.cmd_id, rest.append, rest.append, offset=4
        ) == end  # fmt: skip
        assert "".join(rest) == "two\nthree\n"
        resumed: list[str] = []

        async def follow() -> int:
            return await p.get_session_command_logs_async(
                "resume", cmd.cmd_id, resumed.append, resumed.append, offset=8
            )

        assert asyncio.run(follow()) == end and "".join(resumed) == "three\n"
    finally:
        p.delete_session("resume")


def test_errors_say_what_to_do(server: ServerProcess, cove: Cove) -> None:
    with pytest.raises(NotFound, match="cove list"):
        cove.get("no-such-sandbox")
    with Cove(api_url=server.api_url, api_key="wrong") as bad, pytest.raises(AuthError) as auth:
        bad.list()
    assert "COVE_API_KEY" in str(auth.value)
    nowhere = f"http://127.0.0.1:{free_port()}/api"
    with Cove(api_url=nowhere, api_key="k") as bad, pytest.raises(ServerUnreachable) as down:
        bad.list()
    assert "cove serve" in str(down.value)
    with pytest.raises(CoveError) as info:
        cove.create(cpu=1000)
    assert info.value.status == 400 and "cpu" in str(info.value)


def test_async_face_beyond_daytona(server: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncCove(api_url=server.api_url, api_key=server.key) as c:
            sb = await c.create(env_vars={"WHO": "async"})
            r = await sb.process.exec("echo $WHO; echo e >&2")
            assert (r.stdout, r.stderr) == ("async\n", "e\n")
            with pytest.raises(CommandTimeout) as info:
                await sb.process.exec("echo part; sleep 30", timeout=1)
            assert info.value.response.stdout == "part\n"
            rich = await sb.code_interpreter.run_code("1 + 1")
            assert rich.results[0].is_main_result and rich.results[0].text == "2"
            assert sb.id in [s.id for s in await c.list()]
        # Closing the client deleted what it created.
        async with AsyncCove(api_url=server.api_url, api_key=server.key) as c:
            assert sb.id not in [s.id for s in await c.list()]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_stopped_and_deleted_sandboxes_say_so(cove: Cove) -> None:
    sb = cove.create()
    sb.stop()
    assert sb.state == "stopped"
    with pytest.raises(SandboxError, match=r"sandbox\.start\(\)"):
        sb.process.exec("true")
    sb.start()
    assert sb.state == "started" and sb.process.exec("echo back").stdout == "back\n"
    sb.delete()
    with pytest.raises(NotFound):
        sb.process.exec("true")
    with pytest.raises(NotFound):  # a refused WebSocket upgrade maps the same way
        sb.code_interpreter.run_code("1")
