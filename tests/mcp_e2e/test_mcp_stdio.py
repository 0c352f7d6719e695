"""`cove mcp` over stdio, driven by the mcp SDK's own client against a real
server: every tool called and its content checked, resources read, progress
during a long exec, and cancellation that leaves no process behind."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp_types import BlobResourceContents, ImageContent, TextResourceContents

from cove.sdk import Cove
from tests.mcp_e2e.client import call, call_error, decode_png, stdio_client, text_of
from tests.serverproc import ServerProcess

TOOLS = {
    "create_sandbox", "list_sandboxes", "delete_sandbox", "exec", "run_code",
    "create_code_context", "code_run", "write_file", "read_file", "list_files",
    "search_files", "find_files", "replace_in_files", "upload_file", "download_file",
    "start_command", "read_logs", "send_input", "kill_command", "preview_url",
}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox_id(server: ServerProcess) -> Iterator[str]:
    with Cove(api_url=server.api_url, api_key=server.key) as cove:
        sb = cove.create()
        yield sb.id


def test_tools_are_listed_with_descriptions_and_schemas(server: ServerProcess) -> None:
    async def main() -> None:
        async with stdio_client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) >= TOOLS
            for tool in tools.values():
                assert tool.description and tool.input_schema["type"] == "object"
            assert tools["exec"].input_schema["required"] == ["sandbox_id", "command"]

    asyncio.run(main())


def test_create_list_exec_delete(server: ServerProcess) -> None:
    async def main() -> None:
        async with stdio_client(server) as client:
            made = await call(client, "create_sandbox", labels={"via": "mcp"}, env={"WHO": "mcp"})
            sid = made["id"]
            assert made["state"] == "started" and made["labels"]["via"] == "mcp"
            listed = await call(client, "list_sandboxes", labels={"via": "mcp"})
            assert [s["id"] for s in listed["sandboxes"]] == [sid]

            r = await call(
                client, "exec", sandbox_id=sid, command="echo out $WHO $X; echo err >&2; exit 3",
                env={"X": "x1"},
            )  # fmt: skip
            assert r == {
                "exit_code": 3, "stdout": "out mcp x1\n", "stderr": "err\n",
                "timed_out": False, "truncated": False,
            }  # fmt: skip
            r = await call(client, "exec", sandbox_id=sid, command="pwd", cwd="/tmp")
            assert r["stdout"] == "/tmp\n" and r["exit_code"] == 0
            home = (await call(client, "exec", sandbox_id=sid, command="pwd"))["stdout"]
            await call(client, "exec", sandbox_id=sid, command="cd /tmp; export Q=1")
            r = await call(client, "exec", sandbox_id=sid, command="pwd; echo Q=$Q")
            assert r["stdout"] == f"{home}Q=\n"  # each exec starts afresh
            r = await call(client, "exec", sandbox_id=sid, command="echo a; sleep 30", timeout=1)
            assert r["timed_out"] and r["stdout"] == "a\n"

            assert (await call(client, "delete_sandbox", sandbox_id=sid)) == {"deleted": sid}
            assert (await call(client, "list_sandboxes", labels={"via": "mcp"}))["sandboxes"] == []
            err = await call_error(client, "exec", sandbox_id=sid, command="true")
            assert "list_sandboxes" in err  # says what to do next

    asyncio.run(main())


def test_run_code_keeps_state_and_returns_plots_as_png(
    server: ServerProcess, sandbox_id: str
) -> None:
    async def main() -> None:
        async with stdio_client(server) as client:
            await client.call_tool("run_code", {"sandbox_id": sandbox_id, "code": "x = 41"})
            r = await client.call_tool("run_code", {"sandbox_id": sandbox_id, "code": "x + 1"})
            assert not r.is_error and "result: 42" in text_of(r)
            r = await client.call_tool(
                "run_code", {"sandbox_id": sandbox_id, "code": "print('hi')\n1/0"}
            )
            assert "stdout:\nhi" in text_of(r) and "ZeroDivisionError" in text_of(r)

            plot = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
            r = await client.call_tool("run_code", {"sandbox_id": sandbox_id, "code": plot})
            images = [b for b in r.content if isinstance(b, ImageContent)]
            assert len(images) == 1 and images[0].mime_type == "image/png"
            width, height = decode_png(base64.b64decode(images[0].data))
            assert width > 100 and height > 100

            ctx = await call(client, "create_code_context", sandbox_id=sandbox_id)
            r = await client.call_tool(
                "run_code",
                {"sandbox_id": sandbox_id, "code": "print(x)", "context_id": ctx["context_id"]},
            )
            assert "NameError" in text_of(r)  # a context of its own

            r2 = await call(
                client, "code_run", sandbox_id=sandbox_id, code="import sys; print(sys.argv[1:])",
                argv=["a", "b"],
            )  # fmt: skip
            assert r2["stdout"] == "['a', 'b']\n" and r2["exit_code"] == 0
            r2 = await call(
                client, "code_run", sandbox_id=sandbox_id, code="console.log(6 * 7)",
                language="javascript",
            )  # fmt: skip
            assert r2["stdout"] == "42\n"

    asyncio.run(main())


def test_file_tools_and_file_resource(
    server: ServerProcess, sandbox_id: str, tmp_path: Path
) -> None:
    local = tmp_path / "up.bin"
    local.write_bytes(bytes(range(256)) * 64)

    async def main() -> None:
        async with stdio_client(server) as client:
            sid = sandbox_id
            w = await call(client, "write_file", sandbox_id=sid, path="src/a.py", content="x = 1\n")
            assert w == {"path": "src/a.py", "bytes": 6}
            await call(client, "write_file", sandbox_id=sid, path="src/b.txt", content="x here\n")
            r = await call(client, "read_file", sandbox_id=sid, path="src/a.py")
            assert r["content"] == "x = 1\n"
            listed = await call(client, "list_files", sandbox_id=sid, path="src")
            assert sorted(f["name"] for f in listed["files"]) == ["a.py", "b.txt"]
            found = await call(client, "search_files", sandbox_id=sid, path="src", pattern="x")
            assert {(m["file"].rsplit("/", 1)[-1], m["line"]) for m in found["matches"]} == {
                ("a.py", 1), ("b.txt", 1),
            }  # fmt: skip
            names = await call(client, "find_files", sandbox_id=sid, path="src", pattern="*.py")
            assert [f.rsplit("/", 1)[-1] for f in names["files"]] == ["a.py"]
            rep = await call(
                client, "replace_in_files", sandbox_id=sid, files=["src/a.py"], pattern="x = 1",
                new_value="x = 2",
            )  # fmt: skip
            assert [r["success"] for r in rep["results"]] == [True]
            assert (await call(client, "read_file", sandbox_id=sid, path="src/a.py"))[
                "content"
            ] == "x = 2\n"
            err = await call_error(client, "read_file", sandbox_id=sid, path="src")
            assert "list_files" in err

            await call(client, "upload_file", sandbox_id=sid, local_path=str(local), path="up.bin")
            back = tmp_path / "down.bin"
            await call(client, "download_file", sandbox_id=sid, path="up.bin", local_path=str(back))
            assert back.read_bytes() == local.read_bytes()
            err = await call_error(
                client, "upload_file", sandbox_id=sid, local_path=str(tmp_path / "nope"), path="n"
            )
            assert "nope" in err

            res = await client.read_resource(f"cove://{sid}/files/src/a.py")
            [content] = res.contents
            assert isinstance(content, BlobResourceContents)
            assert base64.b64decode(content.blob) == b"x = 2\n"

    asyncio.run(main())


def test_session_tools_and_logs_resource(server: ServerProcess, sandbox_id: str) -> None:
    async def main() -> None:
        async with stdio_client(server) as client:
            sid = sandbox_id
            started = await call(
                client, "start_command", sandbox_id=sid, session_id="talk",
                command="echo ready; while read line; do echo got $line; done",
            )  # fmt: skip
            cmd = started["command_id"]
            ids = {"sandbox_id": sid, "session_id": "talk", "command_id": cmd}
            logs = await _logs_until(client, ids, "ready\n", 0)
            assert logs["exit_code"] is None
            await call(client, "send_input", **ids, data="one")
            more = await _logs_until(client, ids, "got one\n", logs["next_offset"])
            assert more["output"] == "got one\n"  # only what came after the offset

            res = await client.read_resource(f"cove://{sid}/logs/talk/{cmd}")
            [content] = res.contents
            assert isinstance(content, TextResourceContents)
            assert content.text == "ready\ngot one\n"

            # Following: read_logs waits for a short command's end.
            short = await call(
                client, "start_command", sandbox_id=sid, session_id="talk",
                command="sleep 0.5; echo done",
            )  # fmt: skip
            waited = await call(
                client, "read_logs", sandbox_id=sid, session_id="talk",
                command_id=short["command_id"], wait_seconds=30,
            )  # fmt: skip
            assert waited["output"] == "done\n" and waited["exit_code"] == 0

            killed = await call(client, "kill_command", **ids)
            assert killed["command_id"] == cmd
            assert (await call(client, "read_logs", **ids))["exit_code"] is not None

    asyncio.run(main())


async def _logs_until(client: Any, ids: dict[str, str], want: str, offset: int) -> dict[str, Any]:
    """read_logs from `offset` until `want` has arrived (with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        logs = await call(client, "read_logs", **ids, offset=offset)
        if want in logs["output"] or loop.time() > deadline:
            assert want in logs["output"], logs
            return logs
        await asyncio.sleep(0.1)  # read_logs is a snapshot; poll it against the deadline


def test_preview_url(server: ServerProcess, sandbox_id: str) -> None:
    async def main() -> None:
        async with stdio_client(server) as client:
            link = await call(client, "preview_url", sandbox_id=sandbox_id, port=8080)
            assert link["url"].startswith("http") and sandbox_id in link["url"] and link["token"]
            err = await call_error(client, "preview_url", sandbox_id=sandbox_id, port=0)
            assert "port" in err

    asyncio.run(main())


def test_progress_during_a_long_exec(server: ServerProcess, sandbox_id: str) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async def main() -> None:
        async with stdio_client(server) as client:
            r = await client.call_tool(
                "exec",
                {"sandbox_id": sandbox_id, "command": "for i in 1 2 3; do echo $i; sleep 1; done"},
                progress_callback=on_progress,
            )
            assert not r.is_error and '"stdout": "1\\n2\\n3\\n"' in text_of(r)

    asyncio.run(main())
    assert len(progress) >= 2
    values = [v for v, _ in progress]
    assert values == sorted(values)
    assert any(m and "bytes of output" in m for _, m in progress)


def test_cancelling_exec_kills_the_command(server: ServerProcess, sandbox_id: str) -> None:
    marker = "sleep 271"  # a command line no other test runs

    async def main() -> None:
        async with stdio_client(server) as client:
            first = asyncio.Event()

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                first.set()

            call_task = asyncio.create_task(
                client.call_tool(
                    "exec",
                    {"sandbox_id": sandbox_id, "command": marker},
                    progress_callback=on_progress,
                )
            )
            await asyncio.wait_for(first.wait(), 30)  # the command runs
            running = await call(client, "exec", sandbox_id=sandbox_id, command="ps -eo args")
            assert marker in running["stdout"]
            call_task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call_task
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:
                ps = await call(client, "exec", sandbox_id=sandbox_id, command="ps -eo args")
                if marker not in ps["stdout"] or loop.time() > deadline:
                    break
                await asyncio.sleep(0.1)  # the kill is asynchronous; check against a deadline
            assert marker not in ps["stdout"]

    asyncio.run(main())


def test_cancelling_run_code_interrupts_it_and_keeps_state(
    server: ServerProcess, sandbox_id: str
) -> None:
    async def main() -> None:
        async with stdio_client(server) as client:
            ctx = await call(client, "create_code_context", sandbox_id=sandbox_id)
            args = {"sandbox_id": sandbox_id, "context_id": ctx["context_id"]}
            await client.call_tool("run_code", {**args, "code": "kept = 5"})
            first = asyncio.Event()

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                first.set()

            code = "import time\nprint('started', flush=True)\ntime.sleep(300)"
            call_task = asyncio.create_task(
                client.call_tool("run_code", {**args, "code": code}, progress_callback=on_progress)
            )
            await asyncio.wait_for(first.wait(), 30)
            call_task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call_task
            # The context is free again (the sleep was interrupted) and kept its state.
            r = await asyncio.wait_for(client.call_tool("run_code", {**args, "code": "kept"}), 30)
            assert "result: 5" in text_of(r)

    asyncio.run(main())
