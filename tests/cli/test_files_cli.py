"""`cove cp` and `cove ls`, run for real in a subprocess against a real server."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.cli.files import Progress, parse_side
from cove.sdk import Cove, Sandbox
from tests.cli.test_cli import cove_cmd, env  # noqa: F401 (the module's env fixture)
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def sb(server: ServerProcess) -> Iterator[Sandbox]:
    with Cove(api_url=server.api_url, api_key=server.key) as client:
        yield client.create()


def tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> content (None for a directory)."""
    out: dict[str, bytes | None] = {}
    for parent, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(parent, d), root)] = None
        for f in files:
            path = os.path.join(parent, f)
            out[os.path.relpath(path, root)] = Path(path).read_bytes()
    return out


def test_cp_a_directory_in_and_out(sb: Sandbox, env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    src = tmp_path / "proj"
    (src / "pkg" / "empty").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("print('hi')\n")
    (src / "blob.bin").write_bytes(os.urandom(300_000))
    done = cove_cmd("cp", str(src), f"{sb.id}:work", env=env)
    assert done.returncode == 0, done.stderr
    listing = sb.process.exec("cd work && find . | sort").result.split()
    assert listing == [".", "./blob.bin", "./pkg", "./pkg/empty", "./pkg/mod.py"]
    # Into an existing directory: a copy named after the source goes inside it.
    sb.process.exec("mkdir -p into")
    assert cove_cmd("cp", str(src), f"{sb.id}:into", env=env).returncode == 0
    assert sb.process.exec("cat into/proj/pkg/mod.py").result == "print('hi')\n"
    back = tmp_path / "back"
    done = cove_cmd("cp", f"{sb.id}:work", str(back), env=env)
    assert done.returncode == 0, done.stderr
    assert tree(back) == tree(src)


def test_cp_a_file_both_ways(sb: Sandbox, env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    local = tmp_path / "note.txt"
    local.write_text("a note\n")
    assert cove_cmd("cp", str(local), f"{sb.id}:/tmp/n.txt", env=env).returncode == 0
    assert sb.process.exec("cat /tmp/n.txt").result == "a note\n"
    (tmp_path / "out").mkdir()
    assert cove_cmd("cp", f"{sb.id}:/tmp/n.txt", str(tmp_path / "out"), env=env).returncode == 0
    assert (tmp_path / "out" / "n.txt").read_text() == "a note\n"


def test_cp_errors_say_what_is_wrong(sb: Sandbox, env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    both_local = cove_cmd("cp", str(tmp_path), str(tmp_path / "x"), env=env)
    assert both_local.returncode == 2 and "SANDBOX:PATH" in both_local.stderr
    missing = cove_cmd("cp", f"{sb.id}:no/such", str(tmp_path / "x"), env=env)
    assert missing.returncode == 1 and "no/such" in missing.stderr
    assert not (tmp_path / "x").exists()


def test_ls(sb: Sandbox, env: dict[str, str]) -> None:  # noqa: F811
    sb.process.exec("mkdir -p lsdir/sub && printf 12345 > lsdir/five.txt")
    plain = cove_cmd("ls", sb.id, "lsdir", env=env)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0].split()[-1] == "five.txt" and lines[0].split()[3] == "5"
    assert lines[0].startswith("-rw") and lines[1].startswith("d") and lines[1].endswith("sub/")
    as_json = json.loads(cove_cmd("ls", "--json", sb.id, "lsdir", env=env).stdout)
    assert [(e["name"], e["size"], e["isDir"]) for e in as_json] == [
        ("five.txt", 5, False),
        ("sub", as_json[1]["size"], True),
    ]


def test_sides() -> None:
    assert (parse_side("sb-1:/x").sandbox, parse_side("sb-1:/x").path) == ("sb-1", "/x")
    assert parse_side("sb-1:").path == "."
    assert parse_side("./a:b").sandbox is None and parse_side("/t/a:b").sandbox is None


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_after_a_second_on_a_terminal() -> None:
    out = Tty()
    bar = Progress(1000, "up", out)
    bar(500)
    assert out.getvalue() == ""  # a quick transfer shows nothing
    bar.start -= 2  # as if two seconds had passed
    bar(500)
    assert "50%" in out.getvalue() and "[" in out.getvalue()
    bar.close()
    assert out.getvalue().endswith("\r\033[K")
    quiet = io.StringIO()  # not a terminal: never drawn
    piped = Progress(1000, "up", quiet)
    piped.start -= 2
    piped(500)
    assert quiet.getvalue() == ""
