"""`/process/code-run`: a program in one language, run once in a fresh directory.

Loaded on the first code_run (see `app.DEFERRED`): the python zygote, the chart
capture and the temporary directories are not part of a sandbox's start.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from cove.agent import scripts
from cove.agent.core import Agent
from cove.agent.exec.routes import check_timeout, respond, result_fields
from cove.agent.exec.zygote import Zygote
from cove.agent.httpserver import Request, Response, Router
from cove.agent.proc.spawn import SpawnSpec
from cove.agent.scripts import charts
from cove.wire.errors import BadRequest
from cove.wire.protocol.process import LANGUAGES, CodeRunRequest, CodeRunResponse

SOURCE_NAMES = {
    "python": "main.py",
    "javascript": "main.js",
    "typescript": "main.ts",
    "bash": "main.sh",
}


class CodeRunRoutes:
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
        router.add("POST", "/process/code-run", self.code_run)

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
        check_timeout(body.timeout)
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
        response = CodeRunResponse(**result_fields(captured))  # type: ignore[arg-type]
        response.artifacts = {"stdout": response.stdout, "charts": found}
        return respond(response, captured.timed_out, body.timeout)


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
