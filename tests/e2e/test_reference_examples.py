"""The reference page's stateless examples, run by the official SDK unchanged
but for configuration (DaytonaConfig instead of environment variables)."""

from __future__ import annotations

from typing import Any

import pytest


def test_code_run_example(sandbox: Any) -> None:
    # Run Python code
    response = sandbox.process.code_run("""
def greet(name):
    return f"Hello, {name}!"

print(greet("Daytona"))
""")
    print(response.result)
    assert response.result == "Hello, Daytona!\n"
    assert response.exit_code == 0


@pytest.mark.timeout(300)
def test_shell_examples(sandbox: Any) -> None:
    # Execute any shell command
    response = sandbox.process.exec("ls -la")
    print(response.result)
    assert response.exit_code == 0
    assert "total" in response.result

    # Setting a working directory and a timeout
    response = sandbox.process.exec("sleep 3", cwd="workspace/src", timeout=10)
    print(response.result)
    assert response.exit_code == 0

    # Passing environment variables
    response = sandbox.process.exec("echo $CUSTOM_SECRET", env={"CUSTOM_SECRET": "DAYTONA"})
    print(response.result)
    assert response.result == "DAYTONA\n"


def test_relative_cwd_is_under_the_working_directory(sandbox: Any) -> None:
    sandbox.process.exec("mkdir -p workspace/repo")
    assert (
        sandbox.process.exec("pwd", cwd="workspace/repo").result.strip().endswith("/workspace/repo")
    )
    assert sandbox.process.exec("pwd", cwd="/tmp").result == "/tmp\n"
    assert sandbox.process.exec("pwd").result.strip() == sandbox.get_work_dir()


def test_error_handling_example(sandbox: Any) -> None:
    from daytona import DaytonaError

    seen = []
    try:
        response = sandbox.process.code_run("invalid python code")
        if response.exit_code != 0:
            print(f"Exit code: {response.exit_code}")
            print(f"Error output: {response.result}")
            seen.append(response)
    except DaytonaError as e:
        print(f"Execution failed: {e}")
    assert seen and seen[0].exit_code == 1
    assert "SyntaxError" in seen[0].result


def test_timeout_raises_the_timeout_error_the_sdk_expects(sandbox: Any) -> None:
    from daytona import DaytonaTimeoutError

    with pytest.raises(DaytonaTimeoutError) as info:
        sandbox.process.exec("echo before; sleep 30", timeout=1)
    assert "timed out" in str(info.value)


@pytest.mark.parametrize(
    ("language", "code", "expected"),
    [
        ("python", "import sys; print(sys.argv[1:])", "['a', 'b']\n"),
        ("javascript", "console.log(process.argv.slice(2).join(','))", "a,b\n"),
        (
            "typescript",
            "const n: number = 41; console.log(n + 1, process.argv.slice(2))",
            "42 [ 'a', 'b' ]\n",
        ),
        ("bash", 'echo "$@"', "a b\n"),
    ],
)
def test_code_run_languages_with_argv(
    api: Any, sandbox: Any, language: str, code: str, expected: str
) -> None:
    r = api.post(
        f"/toolbox/{sandbox.id}/process/code-run",
        json={"code": code, "language": language, "argv": ["a", "b"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["result"] == expected
    assert r.json()["artifacts"]["charts"] == []


def test_code_run_takes_the_sandbox_language(daytona: Any) -> None:
    from daytona import CreateSandboxFromSnapshotParams

    sb = daytona.create(CreateSandboxFromSnapshotParams(language="typescript"))
    try:
        assert sb.process.code_run("let s: string = 'ts'; console.log(s)").result == "ts\n"
    finally:
        daytona.delete(sb)
