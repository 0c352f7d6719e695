"""`/process/execute` and `/process/code-run`: run to completion, return the output."""

from __future__ import annotations

import os
import shutil
import tempfile

from cove.agent import scripts
from cove.agent.core import Agent, Captured
from cove.agent.exec.zygote import Zygote
from cove.agent.httpserver import Request, Response, Router, json_response
from cove.agent.proc.spawn import SpawnSpec
from cove.agent.scripts import charts
from cove.wire.errors import BadRequest, ProcessTimeout
from cove.wire.protocol.process import (
    LANGUAGES,
    CodeRunRequest,
    CodeRunResponse,
    ExecuteRequest,
    ExecuteResponse,
)

SOURCE_NAMES = {
    "python": "main.py",
    "javascript": "main.js",
    "typescript": "main.ts",
    "bash": "main.sh",
}


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")


def _fields(c: Captured) -> dict[str, object]:
    return {
        "exit_code": c.exit_code,
        "result": _text(c.output.combined),
        "stdout": _text(c.output.stdout),
        "stderr": _text(c.output.stderr),
        "timed_out": c.timed_out,
        "truncated": c.output.truncated,
    }


def _respond(body: ExecuteResponse, timed_out: bool, timeout: float | None) -> Response:
    if timed_out:
        # Daytona's SDK expects a 408 here; Cove's reads the partial output from the body.
        raise ProcessTimeout(f"command timed out after {timeout:g}s", body=body.to_wire())
    return json_response(body.to_wire())


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise BadRequest("field 'timeout' must be >= 0 (seconds; 0 means no limit)")


class ExecuteRoutes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.zygote = Zygote(agent, self._python_env)

    def _python_env(self) -> dict[str, str]:
        """What every python run's environment starts from: the zygote's."""
        env = self.agent.child_env(None)
        _chart_env(env)
        return env

    async def aclose(self) -> None:
        await self.zygote.close()

    def register(self, router: Router) -> None:
        router.add("POST", "/process/execute", self.execute)
        router.add("POST", "/process/code-run", self.code_run)

    async def execute(self, req: Request) -> Response:
        body = ExecuteRequest.from_wire(req.json())
        _check_timeout(body.timeout)
        if not body.command.strip():
            raise BadRequest("field 'command' must not be empty")
        if "\0" in body.command:
            raise BadRequest("field 'command' contains a NUL byte")
        captured = await self.agent.run_captured(
            [self.agent.shell, "-c", body.command],
            cwd=self.agent.resolve_cwd(body.cwd),
            env=self.agent.child_env(body.envs),
            timeout=body.timeout,
            cap=body.max_output_bytes,
            via_shell=True,
        )
        return _respond(ExecuteResponse(**_fields(captured)), captured.timed_out, body.timeout)  # type: ignore[arg-type]

    def _argv(self, language: str, src: str, workdir: str) -> list[str]:
        cfg = self.agent.config
        if language == "python":
            return [self.agent.python("code_run in python"), "-u", src]
        if language == "javascript":
            return [cfg.node, src]
        if language == "bash":
            return [self.agent.shell, src]
        esbuild = os.path.join(cfg.runtime_dir, "node", "node_modules", ".bin", "esbuild")
        if not os.path.exists(esbuild):
            raise BadRequest("typescript needs esbuild in the sandbox runtime: run `make install`")
        out = os.path.join(workdir, "main.js")
        script = (
            f'"{esbuild}" "{src}" --outfile="{out}" --format=cjs --platform=node '
            f'--log-level=warning && exec "{cfg.node}" "{out}" "$@"'
        )
        return [self.agent.shell, "-c", script, "ts"]

    async def code_run(self, req: Request) -> Response:
        body = CodeRunRequest.from_wire(req.json())
        _check_timeout(body.timeout)
        language = (body.language or self.agent.config.language).lower()
        if language in ("js", "node"):
            language = "javascript"
        if language not in LANGUAGES:
            raise BadRequest(
                f"field 'language' must be one of {', '.join(LANGUAGES)}, got {language!r}"
            )
        # A fresh directory per run: the interpreter starts clean, nothing leaks between runs.
        workdir = tempfile.mkdtemp(prefix="cove-run-", dir="/tmp")
        try:
            src = os.path.join(workdir, SOURCE_NAMES[language])
            with open(src, "w", encoding="utf-8") as f:
                f.write(body.code)
            env = self.agent.child_env(body.envs)
            chart_dir = _capture_charts(workdir, env) if language == "python" else None
            spec = SpawnSpec(
                [*self._argv(language, src, workdir), *body.argv], self.agent.config.workdir, env
            )
            captured = await self.agent.run_captured(
                spec.argv,
                cwd=spec.cwd,
                env=env,
                timeout=body.timeout,
                cap=body.max_output_bytes,
                # python forks from the zygote (spawned like `spec` when it cannot);
                # NUL bytes: python3's file reader and compile() disagree, so spawn
                starter=self.zygote.starter(spec, src, body.argv)
                if chart_dir and "\0" not in body.code
                else None,
            )
            found = charts.read_charts(chart_dir) if chart_dir else []
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        response = CodeRunResponse(**_fields(captured))  # type: ignore[arg-type]
        response.artifacts = {"stdout": response.stdout, "charts": found}
        return _respond(response, captured.timed_out, body.timeout)


BOOT_DIR = scripts.path("boot")  # holds the runs' sitecustomize.py


def _chart_env(env: dict[str, str]) -> None:
    """What every python run's environment has for the chart capture (the zygote's too)."""
    env["PYTHONPATH"] = os.pathsep.join(p for p in (BOOT_DIR, env.get("PYTHONPATH")) if p)
    env["COVE_CHARTS_PY"] = charts.__file__
    env.setdefault("MPLBACKEND", "Agg")


def _capture_charts(workdir: str, env: dict[str, str]) -> str:
    """Make a Python run save its matplotlib figures as SDK charts into a directory.

    A small `sitecustomize` (first on PYTHONPATH) hooks the import of pyplot,
    so the user's file runs as itself, unwrapped: tracebacks and `__main__`
    are theirs, and runs that draw nothing load nothing.
    """
    out = os.path.join(workdir, "charts")
    os.makedirs(out)
    _chart_env(env)
    env["COVE_CHART_DIR"] = out
    return out
