"""`sandbox.fs` of the Cove SDK, sync and async, against a real server: Daytona's
names, streamed both ways. Content is checked inside the sandbox with `exec`."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from cove.sdk import AsyncCove, FileDownloadRequest, FileUpload, Sandbox
from cove.wire.errors import BadRequest, Conflict, NotFound
from tests.serverproc import ServerProcess


def sh(sb: Sandbox, command: str) -> str:
    r = sb.process.exec(command)
    assert r.exit_code == 0, r.result
    return r.result


def test_upload_each_kind_of_source(csb: Sandbox, tmp_path: Path) -> None:
    local = tmp_path / "l.txt"
    local.write_text("from path\n")
    csb.fs.upload_file(b"from bytes\n", "kinds/bytes.txt")
    csb.fs.upload_file(str(local), "kinds/path.txt")
    csb.fs.upload_file(io.BytesIO(b"from stream\n"), "/tmp/kinds/stream.txt")
    assert sh(csb, "cat kinds/bytes.txt kinds/path.txt /tmp/kinds/stream.txt") == (
        "from bytes\nfrom path\nfrom stream\n"
    )


def test_upload_files_and_download_files(csb: Sandbox, tmp_path: Path) -> None:
    csb.fs.upload_files([FileUpload(f"{i}\n".encode(), f"batch/{i}.txt") for i in range(50)])
    assert sh(csb, "cat batch/49.txt; ls batch | wc -l") == "49\n50\n"
    got = csb.fs.download_files(
        [
            FileDownloadRequest("batch/1.txt"),
            FileDownloadRequest("batch/2.txt", str(tmp_path / "two.txt")),
            FileDownloadRequest("batch/none.txt"),
        ]
    )
    assert got[0].result == b"1\n" and got[1].result == str(tmp_path / "two.txt")
    assert (tmp_path / "two.txt").read_text() == "2\n"
    assert got[2].result is None and "batch/none.txt" in (got[2].error or "")


def test_download_streams_and_to_a_path(csb: Sandbox, tmp_path: Path) -> None:
    sh(csb, "head -c 5000000 /dev/urandom > rand.bin && sha256sum rand.bin > rand.sum")
    expected = sh(csb, "cat rand.sum").split()[0]
    pieces = list(csb.fs.download_file_stream("rand.bin"))
    assert len(pieces) > 1  # streamed, not one body
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == expected
    assert hashlib.sha256(csb.fs.download_file("rand.bin")).hexdigest() == expected
    csb.fs.download_file("rand.bin", str(tmp_path / "r.bin"))
    assert hashlib.sha256((tmp_path / "r.bin").read_bytes()).hexdigest() == expected


def test_a_failed_download_leaves_no_local_file(csb: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"missing\.bin"):
        csb.fs.download_file("missing.bin", str(tmp_path / "m.bin"))
    assert list(tmp_path.iterdir()) == []


def test_folders_info_list_permissions(csb: Sandbox) -> None:
    csb.fs.create_folder("tree/sub", "750")
    csb.fs.upload_file(b"abc", "tree/sub/f.txt")
    info = csb.fs.get_file_info("tree/sub")
    assert info.is_dir and info.permissions == "0750"
    assert [f.name for f in csb.fs.list_files("tree")] == ["sub"]
    assert [f.name for f in csb.fs.list_files("tree", depth=2)] == ["sub", "f.txt"]
    csb.fs.set_file_permissions("tree/sub/f.txt", mode="600")
    assert sh(csb, "stat -c %a tree/sub/f.txt").strip() == "600"
    with pytest.raises(BadRequest, match="depth"):
        csb.fs.list_files("tree", depth=0)


def test_find_search_replace_move_delete(csb: Sandbox) -> None:
    csb.fs.upload_files([FileUpload(b"x = old\n", "code/a.py"), FileUpload(b"old\n", "code/b.txt")])
    assert [(m.line, m.content) for m in csb.fs.find_files("code/a.py", "old")] == [(1, "x = old")]
    assert [p.rsplit("/", 1)[1] for p in csb.fs.search_files("code", "*.py").files] == ["a.py"]
    results = csb.fs.replace_in_files(["code/a.py"], "old", "new")
    assert results[0].success and sh(csb, "cat code/a.py") == "x = new\n"
    with pytest.raises(Conflict):
        csb.fs.move_files("code/a.py", "code/b.txt")
    csb.fs.move_files("code/a.py", "code/c.py")
    assert sh(csb, "ls code") == "b.txt\nc.py\n"
    with pytest.raises(BadRequest, match="recursive"):
        csb.fs.delete_file("code")
    csb.fs.delete_file("code", recursive=True)
    with pytest.raises(NotFound):
        csb.fs.get_file_info("code")


def test_async_face_every_call(server: ServerProcess, csb: Sandbox, tmp_path: Path) -> None:
    async def chunks() -> Any:
        for i in range(3):
            yield f"chunk {i}\n".encode()

    async def main() -> None:
        async with AsyncCove(api_url=server.api_url, api_key=server.key) as cove:
            sb = await cove.get(csb.id)
            fs = sb.fs
            await fs.create_folder("async", "700")
            await fs.upload_file(b"bytes\n", "async/a.txt")
            await fs.upload_file(chunks(), "async/iter.txt")
            await fs.upload_files([FileUpload(b"old\n", "async/b.txt")])
            assert await fs.download_file("async/iter.txt") == b"chunk 0\nchunk 1\nchunk 2\n"
            await fs.download_file("async/a.txt", str(tmp_path / "a.txt"))
            pieces = [p async for p in await fs.download_file_stream("async/a.txt")]
            assert b"".join(pieces) == b"bytes\n"
            got = await fs.download_files([FileDownloadRequest("async/b.txt")])
            assert got[0].result == b"old\n"
            names = [f.name for f in await fs.list_files("async")]
            assert names == ["a.txt", "b.txt", "iter.txt"]
            assert (await fs.get_file_info("async")).permissions == "0700"
            assert [m.line for m in await fs.find_files("async", "chunk 2")] == [3]
            assert len((await fs.search_files("async", "*.txt")).files) == 3
            assert (await fs.replace_in_files(["async/b.txt"], "old", "new"))[0].success
            await fs.move_files("async/b.txt", "async/c.txt")
            await fs.set_file_permissions("async/c.txt", mode="640")
            assert (await fs.get_file_info("async/c.txt")).permissions == "0640"
            await fs.delete_file("async", recursive=True)
            with pytest.raises(NotFound):
                await fs.get_file_info("async")

    asyncio.run(asyncio.wait_for(main(), 60))
    assert (tmp_path / "a.txt").read_text() == "bytes\n"
