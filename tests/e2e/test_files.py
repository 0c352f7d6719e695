"""`sandbox.fs` of the official SDK, unmodified, one test per call (issue 12, item 1).

Every test checks content inside the sandbox through another route (`exec`),
not only that the call returned.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest


def sh(sandbox: Any, command: str) -> str:
    result = sandbox.process.exec(command)
    assert result.exit_code == 0, result.result
    return str(result.result)


def test_create_folder_with_mode(sandbox: Any) -> None:
    sandbox.fs.create_folder("made/deep/er", "750")
    assert sh(sandbox, "stat -c %a made/deep/er").strip() == "750"
    sandbox.fs.create_folder("made/deep/er", "700")  # exists: mode changes, no error
    assert sh(sandbox, "stat -c %a made/deep/er").strip() == "700"


def test_upload_file_bytes(sandbox: Any) -> None:
    data = bytes(range(256)) * 1000
    sandbox.fs.upload_file(data, "up/bytes.bin")  # the parent is created
    assert (
        sh(sandbox, "sha256sum up/bytes.bin").split()[0]
        == __import__("hashlib").sha256(data).hexdigest()
    )


def test_upload_file_from_local_path(sandbox: Any, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_text("from a local file\n")
    sandbox.fs.upload_file(str(local), "/tmp/from-path.txt")  # absolute path
    assert sh(sandbox, "cat /tmp/from-path.txt") == "from a local file\n"


def test_upload_file_stream(sandbox: Any) -> None:
    stream = io.BytesIO(b"streamed " * 100_000)
    sandbox.fs.upload_file_stream(stream, "up/stream.txt")
    assert sh(sandbox, "wc -c < up/stream.txt").strip() == str(900_000)
    assert sh(sandbox, "head -c 18 up/stream.txt") == "streamed streamed "


def test_upload_file_stream_async_iterable(daytona: Any, server: Any, sandbox: Any) -> None:
    from daytona import AsyncDaytona, DaytonaConfig

    async def chunks() -> Any:
        for i in range(5):
            yield f"part {i}\n".encode()

    async def go() -> None:
        async with AsyncDaytona(DaytonaConfig(api_key=server.key, api_url=server.api_url)) as d:
            asb = await d.get(sandbox.id)
            await asb.fs.upload_file_stream(chunks(), "up/async-iter.txt")

    asyncio.run(go())
    assert sh(sandbox, "cat up/async-iter.txt") == "".join(f"part {i}\n" for i in range(5))


def test_upload_files_many_at_once(sandbox: Any) -> None:
    from daytona import FileUpload

    files = [FileUpload(f"file {i}\n".encode(), f"many/d{i % 7}/f{i}.txt") for i in range(300)]
    sandbox.fs.upload_files(files)
    assert sh(sandbox, "find many -type f | wc -l").strip() == "300"
    assert sh(sandbox, "cat many/d5/f299.txt") == "file 299\n"
    assert sh(sandbox, "ls -a many/d0 | grep -c cove-upload || true").strip() == "0"


def test_download_file_to_bytes(sandbox: Any) -> None:
    sh(sandbox, "printf 'hello\\0world' > dl.bin")
    assert sandbox.fs.download_file("dl.bin") == b"hello\0world"


def test_download_file_to_local_path(sandbox: Any, tmp_path: Path) -> None:
    sh(sandbox, "seq 1 50000 > numbers.txt")
    target = tmp_path / "sub" / "numbers.txt"
    sandbox.fs.download_file("numbers.txt", str(target))
    assert target.read_text() == "".join(f"{i}\n" for i in range(1, 50001))


def test_download_file_stream(sandbox: Any) -> None:
    sh(sandbox, "head -c 3000000 /dev/urandom > big.bin && sha256sum big.bin > big.sum")
    pieces = list(sandbox.fs.download_file_stream("big.bin"))
    data = b"".join(pieces)
    assert len(data) == 3_000_000
    expected = sh(sandbox, "cat big.sum").split()[0]
    assert __import__("hashlib").sha256(data).hexdigest() == expected


def test_download_files_bulk_with_a_missing_one(sandbox: Any, tmp_path: Path) -> None:
    from daytona import FileDownloadRequest

    sh(sandbox, "mkdir -p bulk && echo one > bulk/1 && echo two > bulk/2 && : > bulk/empty")
    results = sandbox.fs.download_files(
        [
            FileDownloadRequest(source="bulk/1"),
            FileDownloadRequest(source="bulk/2", destination=str(tmp_path / "two")),
            FileDownloadRequest(source="bulk/empty"),
            FileDownloadRequest(source="bulk/missing"),
        ]
    )
    by_source = {r.source: r for r in results}
    assert by_source["bulk/1"].result == b"one\n" and by_source["bulk/1"].error is None
    assert (tmp_path / "two").read_text() == "two\n"
    assert by_source["bulk/empty"].result == b""
    missing = by_source["bulk/missing"]
    assert missing.result is None and "bulk/missing" in missing.error
    assert missing.error_details.status_code == 404


def test_list_files_and_depth(sandbox: Any) -> None:
    sh(sandbox, "mkdir -p tree/a/b && echo x > tree/top.txt && echo yy > tree/a/b/deep.txt")
    names = {f.name: f for f in sandbox.fs.list_files("tree")}
    assert set(names) == {"a", "top.txt"}
    assert names["a"].is_dir and not names["top.txt"].is_dir and names["top.txt"].size == 2
    deep = sandbox.fs.list_files("tree", depth=3)
    assert {f.name for f in deep} == {"a", "b", "top.txt", "deep.txt"}
    assert any(f.path and f.path.endswith("/tree/a/b/deep.txt") for f in deep)


def test_get_file_info(sandbox: Any) -> None:
    sh(sandbox, "echo -n 12345 > info.txt && chmod 640 info.txt")
    info = sandbox.fs.get_file_info("info.txt")
    assert (info.name, info.size, info.is_dir) == ("info.txt", 5, False)
    assert info.permissions == "0640" and info.mode == "-rw-r-----"
    assert info.owner == sh(sandbox, "id -un").strip()
    assert info.modified_at and info.modified_at.endswith("Z")
    assert sandbox.fs.get_file_info(".").is_dir


def test_find_files_content_with_line_numbers(sandbox: Any) -> None:
    sh(sandbox, "mkdir -p src && printf 'a\\nTODO: one\\nb\\n' > src/x.py")
    sh(sandbox, "printf 'TODO: two\\n' > src/y.py && printf 'TODO\\0bin' > src/z.bin")
    matches = sorted(sandbox.fs.find_files("src", "TODO:"), key=lambda m: m.file)
    assert [(os.path.basename(m.file), m.line, m.content) for m in matches] == [
        ("x.py", 2, "TODO: one"),
        ("y.py", 1, "TODO: two"),
    ]


def test_search_files_by_name_glob(sandbox: Any) -> None:
    sh(sandbox, "mkdir -p glob/sub && touch glob/a.py glob/b.txt glob/sub/c.py")
    found = sandbox.fs.search_files("glob", "*.py")
    assert sorted(os.path.basename(f) for f in found.files) == ["a.py", "c.py"]


def test_replace_in_files(sandbox: Any) -> None:
    sh(sandbox, "printf 'old_fn(); old_fn()\\n' > r1.py && chmod 755 r1.py")
    results = sandbox.fs.replace_in_files(["r1.py", "nope.py"], "old_fn", "new_fn")
    by_file = {os.path.basename(r.file): r for r in results}
    assert by_file["r1.py"].success and not by_file["nope.py"].success
    assert "nope.py" in by_file["nope.py"].error
    assert sh(sandbox, "cat r1.py") == "new_fn(); new_fn()\n"
    assert sh(sandbox, "stat -c %a r1.py").strip() == "755"


def test_move_files(sandbox: Any) -> None:
    sh(sandbox, "echo moving > mv-src.txt")
    sandbox.fs.move_files("mv-src.txt", "/tmp/mv-dst.txt")  # across file systems too
    assert sh(sandbox, "cat /tmp/mv-dst.txt; test -e mv-src.txt || echo gone") == "moving\ngone\n"


def test_set_file_permissions(sandbox: Any) -> None:
    sh(sandbox, "echo p > perm.txt")
    user = sh(sandbox, "id -un").strip()
    group = sh(sandbox, "id -gn").strip()
    sandbox.fs.set_file_permissions("perm.txt", mode="600", owner=user, group=group)
    assert sh(sandbox, "stat -c '%a %U %G' perm.txt").split() == ["600", user, group]


def test_delete_file_and_recursive(sandbox: Any) -> None:
    from daytona import DaytonaError

    sh(sandbox, "mkdir -p del/sub && echo x > del/sub/f && echo y > del-one.txt")
    sandbox.fs.delete_file("del-one.txt")
    with pytest.raises(DaytonaError) as err:
        sandbox.fs.delete_file("del")
    assert err.value.status_code == 400 and "recursive" in str(err.value)
    assert sh(sandbox, "cat del/sub/f") == "x\n"  # nothing half-deleted
    sandbox.fs.delete_file("del", recursive=True)
    assert sh(sandbox, "ls del del-one.txt 2>&1 | grep -c 'No such' || true").strip() == "2"


def test_async_sdk_transfers_over_aiohttp(server: Any, sandbox: Any, tmp_path: Path) -> None:
    """AsyncDaytona's upload_files and download_files use aiohttp, not httpx."""
    from daytona import AsyncDaytona, DaytonaConfig, FileDownloadRequest, FileUpload

    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(2_000_000))

    async def go() -> list[Any]:
        async with AsyncDaytona(DaytonaConfig(api_key=server.key, api_url=server.api_url)) as d:
            asb = await d.get(sandbox.id)
            await asb.fs.upload_files(
                [FileUpload(str(local), "aio/big.bin"), FileUpload(b"small\n", "aio/s.txt")]
            )
            pieces = [p async for p in await asb.fs.download_file_stream("aio/s.txt")]
            assert b"".join(pieces) == b"small\n"
            return list(
                await asb.fs.download_files(
                    [
                        FileDownloadRequest(source="aio/big.bin"),
                        FileDownloadRequest(source="aio/s.txt", destination=str(tmp_path / "s")),
                    ]
                )
            )

    big, small = asyncio.run(go())
    assert big.result == local.read_bytes() and big.error is None
    assert small.error is None and (tmp_path / "s").read_text() == "small\n"
