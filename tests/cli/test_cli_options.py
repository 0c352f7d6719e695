"""The CLI's options beyond the basics: `exec --cwd/-e`, `create --cpu/--memory/
--disk`, and `run` of `.js` and `.sh` files with their exit codes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cgroupfiles import HOST, limits
from tests.cli.test_cli import cove_cmd
from tests.serverproc import ServerProcess

GiB = 1 << 30


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    return {**clean, "COVE_API_URL": server.api_url, "COVE_API_KEY": server.key}


@pytest.fixture(scope="module")
def sandbox_id(env: dict[str, str]) -> Iterator[str]:
    made = cove_cmd("create", "--json", env=env)
    assert made.returncode == 0, made.stderr
    sid = json.loads(made.stdout)["id"]
    yield sid
    cove_cmd("delete", sid, env=env)


def test_exec_cwd_and_env_apply_to_that_command_only(env: dict[str, str], sandbox_id: str) -> None:
    line = 'echo "$(pwd) $ONLY $PAIR"'
    done = cove_cmd(
        "exec", "--cwd", "made/here", "-e", "ONLY=this", "-e", "PAIR=a=b", sandbox_id, "--", line,
        env=env,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "/home/user/made/here this a=b\n"), done.stderr
    absolute = cove_cmd("exec", "--cwd", "/tmp", sandbox_id, "--", "pwd", env=env)
    assert absolute.stdout == "/tmp\n"
    after = cove_cmd("exec", sandbox_id, "--", 'echo "$(pwd) [$ONLY]"', env=env)
    assert after.stdout == "/home/user []\n"
    bad = cove_cmd("exec", "-e", "NO_EQUALS", sandbox_id, "--", "true", env=env)
    assert bad.returncode != 0 and "NO_EQUALS" in bad.stderr


@pytest.mark.timeout(300)
def test_create_with_cpu_memory_and_disk(env: dict[str, str]) -> None:
    made = cove_cmd("create", "--json", "--cpu", "2", "--memory", "2", "--disk", "5", env=env)
    assert made.returncode == 0, made.stderr
    sb = json.loads(made.stdout)
    try:
        assert (sb["cpu"], sb["memory"], sb["disk"]) == (2, 2, 5)
        if HOST:  # the limits are enforced, not only recorded (test_limits covers versions)
            got = limits(sb["id"])
            assert (got.cpus, got.memory_bytes) == (2.0, 2 * GiB)
    finally:
        cove_cmd("delete", sb["id"], env=env)
    refused = cove_cmd("create", "--cpu", "1000", env=env)
    assert refused.returncode == 1 and "cpu" in refused.stderr


@pytest.mark.timeout(300)
def test_run_js_and_sh_with_their_exit_codes(
    env: dict[str, str], sandbox_id: str, tmp_path: Path
) -> None:
    js = tmp_path / "prog.js"
    js.write_text("console.log('js', process.argv.slice(2).join(','));\nprocess.exit(4);\n")
    done = cove_cmd("run", "--sandbox", sandbox_id, str(js), "a", "b", env=env)
    assert (done.returncode, done.stdout) == (4, "js a,b\n"), done.stderr
    sh = tmp_path / "prog.sh"
    sh.write_text('echo "sh $1 $2"; echo err >&2; exit 5\n')
    done = cove_cmd("run", "--sandbox", sandbox_id, str(sh), "x", "y", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (5, "sh x y\n", "err\n")
    ok = tmp_path / "ok.sh"
    ok.write_text("echo fine\n")
    assert cove_cmd("run", "--sandbox", sandbox_id, str(ok), env=env).returncode == 0
    # Cove itself failing is 125, never mistaken for the program's own code.
    missing = cove_cmd("run", "--sandbox", "no-such-sandbox", str(sh), env=env)
    assert missing.returncode == 125 and "no-such-sandbox" in missing.stderr
