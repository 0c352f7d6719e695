"""`cove build`, `cove create --image`, `cove images` for real: a subprocess against a real
server, the context sent straight to it (no object store)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.test_cli import cove_cmd
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(900)  # the first image of a fresh machine builds its base


def test_build_create_images(server: ServerProcess, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "DAYTONA_"))}
    env = {**clean, "COVE_API_URL": server.api_url, "COVE_API_KEY": server.key}
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "cli.txt").write_text("from the cli context\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim\nCOPY cli.txt /etc/cli.txt\nRUN echo step-ran\n"
    )
    built = cove_cmd(
        "build", "-f", str(tmp_path / "Dockerfile"), "-t", "cli-img:1", str(ctx), env=env,
        timeout=800,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "COPY cli.txt /etc/cli.txt" in built.stdout and "built " in built.stdout
    assert "step-ran" in built.stdout or "cached layer" in built.stdout
    # Only the build's stream reads its log: none is left once it ended.
    assert not list((server.data_dir / "build-logs").glob("build-*.log"))

    made = cove_cmd("create", "--image", "cli-img:1", "--json", env=env)
    assert made.returncode == 0, made.stderr
    sid = json.loads(made.stdout)["id"]
    try:
        done = cove_cmd("exec", sid, "cat /etc/cli.txt", env=env)
        assert done.stdout == "from the cli context\n", done.stderr
        listed = cove_cmd("images", env=env)
        line = next(x for x in listed.stdout.splitlines() if "cli-img:1" in x)
        assert line.rstrip().endswith("yes")  # in use
    finally:
        cove_cmd("delete", sid, env=env)
    failed = cove_cmd("build", "-f", str(tmp_path / "missing"), str(ctx), env=env)
    assert failed.returncode != 0 and "no Dockerfile" in failed.stderr
