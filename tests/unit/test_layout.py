"""The package's boundaries hold: what must run on a bare Debian python imports only what it has."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import cove

SRC = Path(cove.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module name a file imports (absolute names; relative imports as '.')."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module or "")
    return names


def _files(folder: str) -> list[Path]:
    files = sorted((SRC / folder).rglob("*.py"))
    assert files, f"no modules under cove/{folder}"
    return files


def test_wire_imports_only_the_standard_library_and_itself() -> None:
    bad = {
        f"{path.relative_to(SRC)}: {name}"
        for path in _files("wire")
        for name in _imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith("cove.wire")
        and name != "__future__"
    }
    assert not bad, f"cove/wire must stay standard library only: {sorted(bad)}"


def test_agent_imports_only_the_standard_library_wire_and_itself() -> None:
    # The scripts run in user interpreters, where the sandbox runtime (matplotlib...) is.
    agent = [p for p in _files("agent") if "scripts" not in p.relative_to(SRC).parts]
    bad = {
        f"{path.relative_to(SRC)}: {name}"
        for path in agent
        for name in _imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith(("cove.wire", "cove.agent"))
        and name != "__future__"
    }
    assert not bad, f"the agent runs on Debian's bare python: {sorted(bad)}"


def test_scripts_run_in_user_interpreters_import_nothing_from_cove() -> None:
    bad = {
        f"{path.relative_to(SRC)}: {name}"
        for path in _files("agent/scripts")
        for name in _imports(path)
        if name == "." or name.split(".")[0] == "cove"
    }
    assert not bad, f"scripts run by path in a user's python cannot import cove: {sorted(bad)}"


def test_the_layout_checks_can_fail(tmp_path: Path) -> None:
    """The checks above read real imports: a file importing httpx is seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("import httpx\nfrom cove.server import app\nfrom . import x\n")
    assert _imports(probe) == {"httpx", "cove.server", "."}
