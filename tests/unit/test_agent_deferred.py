"""The agent imports its rarely used features on their first request.

Deferring them is only right if the agent's start really leaves them out, if
every route a deferred feature adds lies under the prefixes that load it (a
route outside them would answer 404 until some other request loaded it), and
if a feature that fails to load says why on each request instead of vanishing.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

import pytest

import cove
from cove.agent import app
from cove.agent.httpserver import Request, Response, Router
from cove.wire.errors import InternalError, NotFound

SRC = Path(cove.__file__).resolve().parents[1]


def agent_start_modules() -> set[str]:
    """The modules a fresh agent process holds once `cove.agent.app` is imported."""
    code = (
        "import json, sys; sys.modules['ssl'] = None; import cove.agent.app; "
        "print(json.dumps(sorted(m for m in sys.modules if sys.modules[m] is not None)))"
    )
    out = subprocess.run(
        ["/usr/bin/python3", "-s", "-S", "-c", code],
        cwd=SRC,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(out.stdout))


def test_the_agents_start_imports_no_deferred_feature_and_no_unused_wire_area() -> None:
    loaded = agent_start_modules()
    assert "cove.agent.exec.routes" in loaded
    deferred = {module for module, _, _ in app.DEFERRED}
    assert not deferred & loaded, f"imported at start: {sorted(deferred & loaded)}"
    areas = ("files", "git", "interpreter", "sandbox", "sessions")
    unused_areas = {f"cove.wire.protocol.{a}" for a in areas}
    assert not unused_areas & loaded, f"imported at start: {sorted(unused_areas & loaded)}"
    # Standard modules only code_run or deferred features need (about 10 ms and
    # 1 MB of every sandbox's agent when they were imported at start).
    later = {"shutil", "tempfile", "urllib.parse", "ssl", "cove.agent.exec.zygote"}
    assert not later & loaded, f"imported at start: {sorted(later & loaded)}"


def routes_of(module: str, name: str) -> list[str]:
    """The path patterns a feature adds (registered on an unbuilt instance: no agent needed)."""
    router = Router()
    cls = getattr(importlib.import_module(module), name)
    cls.register(object.__new__(cls), router)
    return [regex.pattern for _, regex, _ in router._routes]


@pytest.mark.parametrize(("module", "name", "prefixes"), app.DEFERRED)
def test_every_route_of_a_deferred_feature_lies_under_its_prefixes(
    module: str, name: str, prefixes: tuple[str, ...]
) -> None:
    patterns = routes_of(module, name)
    assert patterns
    for pattern in patterns:
        path = pattern.removeprefix("^").removesuffix("$")
        assert any(path == p or path.startswith(p + "/") for p in prefixes), (name, path)


def test_no_eager_route_lies_under_a_deferred_prefix() -> None:
    prefixes = [p for _, _, ps in app.DEFERRED for p in ps]
    for cls in app.EAGER:
        for pattern in routes_of(cls.__module__, cls.__name__):
            path = pattern.removeprefix("^").removesuffix("$")
            assert not any(path == p or path.startswith(p + "/") for p in prefixes), path


async def answer(_: Request) -> Response:
    return Response(204)


def test_a_deferred_group_loads_once_on_the_first_path_under_its_prefix() -> None:
    router = Router()
    loads: list[int] = []

    def load() -> None:
        loads.append(1)
        router.add("GET", "/files/info", answer)

    router.defer(("/files",), load)
    with pytest.raises(NotFound):
        router.match("GET", "/filesystem")  # a longer word is not under the prefix
    assert loads == []
    assert router.match("GET", "/files/info")[0] is answer
    assert router.match("GET", "/files/info")[0] is answer
    assert loads == [1]


def test_a_group_that_fails_to_load_says_why_on_every_request() -> None:
    router = Router()
    tries: list[int] = []

    def load() -> None:
        tries.append(1)
        raise ImportError("no module named 'cove.agent.git.broken'")

    router.defer(("/git",), load)
    for _ in range(2):
        with pytest.raises(InternalError) as refused:
            router.match("POST", "/git/clone")
        assert refused.value.status == 500
        assert "under /git: ImportError: no module named 'cove.agent.git.broken'" in str(
            refused.value
        )
    assert tries == [1, 1]
