"""The CLI is a client of the SDK like any script: it imports the SDK's public
names only and touches no private attribute of anything (`sandbox._t`...)."""

from __future__ import annotations

import ast
from pathlib import Path

import cove.cli

CLI = Path(cove.cli.__file__).parent


def _trees() -> list[tuple[str, ast.AST]]:
    files = sorted(CLI.glob("*.py"))
    assert len(files) >= 4
    return [(p.name, ast.parse(p.read_text(), str(p))) for p in files]


def test_cli_imports_only_the_public_sdk() -> None:
    bad = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cove.sdk"):
                if node.module != "cove.sdk":
                    bad.append(f"{name}: from {node.module} import ...")
                bad += [f"{name}: {a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Import):
                bad += [f"{name}: import {a.name}" for a in node.names if "cove.sdk." in a.name]
    assert not bad, f"the CLI must use `from cove.sdk import <public name>`: {bad}"


def test_cli_reads_no_private_attribute() -> None:
    private = [
        f"{name}:{node.lineno}: .{node.attr}"
        for name, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not (node.attr.startswith("__") and node.attr.endswith("__"))
    ]
    assert not private, f"the CLI reaches into private attributes: {private}"
