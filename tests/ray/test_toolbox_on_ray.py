"""The official SDK, unmodified, against a control plane whose sandboxes run on Ray nodes:
every kind of toolbox traffic crosses a node relay (HTTP, streamed files, WebSocket log
follows, PTYs) and keeps its content."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_pty import read_until


@pytest.fixture(scope="module")
def sandbox(ray_daytona: Any) -> Iterator[Any]:
    sb = ray_daytona.create()
    try:
        yield sb
    finally:
        ray_daytona.delete(sb)


def test_the_sandbox_runs_on_a_ray_node(sandbox: Any, ray_api: Any, ray_cluster: Any) -> None:
    body = ray_api.get(f"/api/sandbox/{sandbox.id}").json()
    assert body["state"] == "started"
    assert body["runnerId"] in {ray_cluster.node_id(n) for n in ray_cluster.nodes}


def test_exec_and_code_run(sandbox: Any) -> None:
    r = sandbox.process.exec("echo $((6*7)); id -u")
    assert r.exit_code == 0 and r.result.splitlines()[0] == "42"
    assert int(r.result.splitlines()[1]) != 0  # a sandbox uid, never root
    code = sandbox.process.code_run("import sys; print(sum(range(10)), sys.version_info[0])")
    assert code.result.strip() == "45 3"


def test_files_stream_through_the_relay(sandbox: Any) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    sandbox.fs.upload_file(payload, "blob.bin")
    assert sandbox.fs.download_file("blob.bin") == payload


def test_a_session_log_follow_streams(sandbox: Any) -> None:
    from daytona import SessionExecuteRequest

    p = sandbox.process
    p.create_session("follow")
    try:
        cmd = p.execute_session_command(
            "follow",
            SessionExecuteRequest(command="read go; seq 1 20000; echo end >&2", run_async=True),
        )
        out: list[str] = []
        err: list[str] = []
        # Output starts on input; a follow (a WebSocket through the relay) reads it
        # from the start to the command's end.
        p.send_session_command_input("follow", cmd.cmd_id, "go\n")

        async def main() -> None:
            await asyncio.wait_for(
                p.get_session_command_logs_async("follow", cmd.cmd_id, out.append, err.append),
                60,
            )

        asyncio.run(main())
        text = "".join(out)
        assert text.endswith("".join(f"{i}\n" for i in range(1, 20001)))
        assert "".join(err) == "end\n"
    finally:
        p.delete_session("follow")


def test_a_pty_is_typed_into(sandbox: Any) -> None:
    handle = sandbox.process.create_pty_session("ray-pty")
    try:
        handle.send_input("echo $((40+2))-on-node\n")
        read_until(handle, b"42-on-node")
        handle.send_input("exit 4\n")
        assert handle.wait(timeout=15).exit_code == 4
    finally:
        handle.disconnect()


def test_metrics_are_read_on_the_node(sandbox: Any) -> None:
    latest = sandbox.get_metrics_latest()
    assert (latest.cpu_count, latest.mem_total) == (1, 1 << 30)
    assert latest.mem_used > 0


def test_a_preview_reaches_an_app_on_the_node(sandbox: Any) -> None:
    import httpx

    from tests.e2e.test_preview import PORT, TOKEN, start_app

    start_app(sandbox)
    link = sandbox.get_preview_link(PORT)
    r = httpx.get(link.url + "/hello?x=1", headers={TOKEN: link.token}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.text.split("\n", 1)[0] == "hello from the sandbox"
