"""The stateful interpreter through the official SDK, unchanged: the reference
page's example, contexts, streaming, errors, envs, timeouts that keep state,
restarts after a kill, input(), subprocess output, and many contexts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest


def test_reference_example(sandbox: Any) -> None:
    seen: list[str] = []

    def handle_stdout(message: Any) -> None:
        print(f"[STDOUT] {message.output}")
        seen.append(message.output)

    # Shared default context
    result = sandbox.code_interpreter.run_code(
        "counter = 1\nprint(f'Counter initialized at {counter}')",
        on_stdout=handle_stdout,
    )
    assert result.error is None
    assert result.stdout == "Counter initialized at 1\n"
    result = sandbox.code_interpreter.run_code("counter += 1\nprint(counter)")
    assert result.stdout == "2\n"

    # Isolated context
    ctx = sandbox.code_interpreter.create_context()
    try:
        sandbox.code_interpreter.run_code(
            "value = 'stored in ctx'",
            context=ctx,
        )
        sandbox.code_interpreter.run_code(
            "print(value)",
            context=ctx,
            on_stdout=handle_stdout,
        )
        isolated = sandbox.code_interpreter.run_code("print(counter)", context=ctx)
        assert isolated.error is not None and isolated.error.name == "NameError"
    finally:
        sandbox.code_interpreter.delete_context(ctx)
    assert "stored in ctx\n" in seen
    assert ctx.id not in [c.id for c in sandbox.code_interpreter.list_contexts()]


def test_contexts_list_create_delete(sandbox: Any) -> None:
    from daytona import DaytonaError, DaytonaNotFoundError

    ci = sandbox.code_interpreter
    ctx = ci.create_context(cwd="/tmp")
    try:
        assert ctx.cwd == "/tmp" and ctx.language == "python" and ctx.active is True
        listed = {c.id: c for c in ci.list_contexts()}
        assert ctx.id in listed and "default" not in listed
        assert ci.run_code("import os; print(os.getcwd())", context=ctx).stdout == "/tmp\n"
    finally:
        ci.delete_context(ctx)
    with pytest.raises(DaytonaNotFoundError):
        ci.delete_context(ctx)
    # The default context cannot be deleted, and an unknown one is not there.
    default = type(ctx)(id="default", active=True, created_at="", cwd="", language="python")
    with pytest.raises(DaytonaError) as info:
        ci.delete_context(default)
    assert info.value.status_code == 400
    with pytest.raises(DaytonaError) as info:
        ci.run_code("print(1)", context=ctx)
    assert "not found" in str(info.value)


def test_two_contexts_cannot_see_each_other(sandbox: Any) -> None:
    ci = sandbox.code_interpreter
    a, b = ci.create_context(), ci.create_context()
    try:
        ci.run_code("secret = 'a-only'", context=a)
        assert ci.run_code("print(secret)", context=a).stdout == "a-only\n"
        err = ci.run_code("print(secret)", context=b).error
        assert err is not None and err.name == "NameError"
        assert ci.run_code("print('secret' in globals())").stdout == "False\n"
    finally:
        ci.delete_context(a)
        ci.delete_context(b)


@pytest.mark.timeout(300)
def test_output_streams_while_the_code_runs(sandbox: Any) -> None:
    # Each tick waits on a FIFO that the test writes to only once it has
    # received the tick before: output held back until the end would hang the
    # run until its timeout.
    fifo = f"/tmp/ticks-{uuid.uuid4().hex}"
    sandbox.process.exec(f"mkfifo {fifo}")
    arrivals: list[str] = []

    def on_stdout(message: Any) -> None:
        arrivals.append(message.output)
        if "".join(arrivals).count("tick") < 3:
            sandbox.process.exec(f"echo > {fifo}", timeout=30)

    result = sandbox.code_interpreter.run_code(
        f"for i in range(3):\n    print('tick', i)\n    if i < 2:\n        open({fifo!r}).read()\n",
        on_stdout=on_stdout,
        timeout=60,
    )
    assert result.error is None, result.error
    assert result.stdout == "tick 0\ntick 1\ntick 2\n"
    assert "".join(arrivals) == result.stdout


def test_exception_has_name_value_and_a_trimmed_traceback(sandbox: Any) -> None:
    errors: list[Any] = []
    result = sandbox.code_interpreter.run_code(
        "def f():\n    raise ValueError('boom')\nprint('before')\nf()",
        on_error=errors.append,
    )
    assert result.stdout == "before\n"
    err = result.error
    assert err.name == "ValueError" and err.value == "boom"
    assert err.traceback.startswith("Traceback (most recent call last):")
    assert "raise ValueError('boom')" in err.traceback
    assert "interp_worker" not in err.traceback and "/opt/cove" not in err.traceback
    assert errors and errors[0].name == "ValueError"
    syntax = sandbox.code_interpreter.run_code("invalid python code").error
    assert syntax.name == "SyntaxError" and "interp_worker" not in syntax.traceback


def test_envs_apply_to_one_run_only(sandbox: Any) -> None:
    ci = sandbox.code_interpreter
    code = "import os, subprocess\nprint(os.environ.get('RUN_ONLY'))\nos.system('echo $RUN_ONLY')"
    assert ci.run_code(code, envs={"RUN_ONLY": "yes"}).stdout == "yes\nyes\n"
    assert ci.run_code(code).stdout == "None\n\n"


def test_timeout_interrupts_and_keeps_state(sandbox: Any) -> None:
    from daytona import DaytonaTimeoutError

    ci = sandbox.code_interpreter
    ctx = ci.create_context()
    try:
        ci.run_code("x = 41", context=ctx)
        with pytest.raises(DaytonaTimeoutError):  # the loop never ends by itself
            ci.run_code("import time\nwhile True:\n    time.sleep(0.1)", context=ctx, timeout=1)
        result = ci.run_code("print(x + 1)", context=ctx)
        assert result.error is None and result.stdout == "42\n"
    finally:
        ci.delete_context(ctx)


@pytest.mark.timeout(300)
def test_a_killed_context_says_it_was_restarted(sandbox: Any) -> None:
    from daytona import DaytonaTimeoutError

    ci = sandbox.code_interpreter
    ctx = ci.create_context()
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(10)\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    try:
        ci.run_code("x = 1", context=ctx)
        with pytest.raises(DaytonaTimeoutError):
            ci.run_code(stubborn, context=ctx, timeout=1)
        told = ci.run_code("print(x)", context=ctx)
        assert told.error is not None and told.error.name == "ContextRestarted"
        assert "state" in told.error.value and "lost" in told.error.value
        assert told.stdout == ""
        after = ci.run_code("print(x)", context=ctx)
        assert after.error is not None and after.error.name == "NameError"
        assert ci.run_code("print('fresh')", context=ctx).stdout == "fresh\n"
    finally:
        ci.delete_context(ctx)


def test_input_gets_eof_and_never_eats_the_next_run(sandbox: Any) -> None:
    ci = sandbox.code_interpreter
    # A blocked input() would end in a timeout error instead.
    result = ci.run_code("name = input('name? ')\nprint('got', name)", timeout=30)
    assert result.error is not None and result.error.name == "EOFError"
    assert ci.run_code("print('next run')").stdout == "next run\n"


def test_subprocess_output_is_captured(sandbox: Any) -> None:
    result = sandbox.code_interpreter.run_code(
        "import os, subprocess, sys\n"
        "os.system('echo from-system; echo sys-err >&2')\n"
        "subprocess.run(['echo', 'from-subprocess'])\n"
        "subprocess.run('echo sub-err >&2', shell=True)\n"
        "print('from-print')\n"
    )
    assert result.stdout == "from-system\nfrom-subprocess\nfrom-print\n"
    assert result.stderr == "sys-err\nsub-err\n"


@pytest.mark.timeout(300)
def test_twenty_contexts(sandbox: Any) -> None:
    ci = sandbox.code_interpreter
    contexts = []
    try:
        for i in range(20):
            ctx = ci.create_context()
            contexts.append(ctx)
            ci.run_code(f"me = {i}", context=ctx)
        for i, ctx in enumerate(contexts):
            assert ci.run_code("print(me)", context=ctx).stdout == f"{i}\n"
        assert len(ci.list_contexts()) >= 20
    finally:
        for ctx in contexts:
            ci.delete_context(ctx)


@pytest.mark.timeout(300)
def test_async_sdk_runs_code_too(server: Any, sandbox: Any) -> None:
    import asyncio

    from daytona import AsyncDaytona, DaytonaConfig, DaytonaTimeoutError

    async def main() -> None:
        async with AsyncDaytona(DaytonaConfig(api_key=server.key, api_url=server.api_url)) as d:
            sb = await d.get(sandbox.id)
            ci = sb.code_interpreter
            await ci.run_code("async_value = 5")
            result = await ci.run_code("print(async_value * 2)")
            assert result.stdout == "10\n" and result.error is None
            with pytest.raises(DaytonaTimeoutError):
                await ci.run_code("import time\ntime.sleep(5)", timeout=1)
            assert (await ci.run_code("print(async_value)")).stdout == "5\n"

    asyncio.run(main())
