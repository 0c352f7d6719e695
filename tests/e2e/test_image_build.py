"""Images built from the official SDK's `Image` and Dockerfiles, end to end.

The base is Debian bookworm built here by mmdebstrap (the stand-in for
`python:3.11-slim`), cached across test sessions; RUN and COPY steps run in
build sandboxes; each step is a layer keyed by its content. Nothing here
needs the network beyond the Debian mirror the base is built from.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerProcess

MULTI_STAGE = """\
FROM python:3.11-slim AS build
RUN mkdir -p /out && echo "built in stage one" > /out/artifact && id -u > /out/uid
FROM python:3.11-slim
ARG GREETING=hello
ENV APP_GREETING=$GREETING FROM_IMAGE=yes
COPY --from=build /out /opt/app/
RUN python3 -c "import sys; print(sys.version_info[:2])" > /opt/app/pyversion
LABEL purpose=test
EXPOSE 8080
"""


# The first build of a session may build the Debian base (a minute or two).
pytestmark = pytest.mark.timeout(900)


def _create(daytona: Any, dockerfile: str, logs: list[str]) -> Any:
    from daytona import CreateSandboxFromImageParams, Image

    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as f:
        f.write(dockerfile)
        f.flush()
        image = Image.from_dockerfile(f.name)
    params = CreateSandboxFromImageParams(image=image)
    return daytona.create(params, timeout=900, on_snapshot_create_logs=logs.append)


@pytest.fixture(scope="module")
def built(daytona: Any) -> Iterator[tuple[Any, list[str], float]]:
    logs: list[str] = []
    started = time.monotonic()
    sb = _create(daytona, MULTI_STAGE, logs)
    try:
        yield sb, logs, time.monotonic() - started
    finally:
        daytona.delete(sb)


def test_multi_stage_build_runs_on_its_image(built: tuple[Any, list[str], float]) -> None:
    sb, logs, _ = built
    text = "\n".join(logs)
    assert "python:3.11-slim -> Debian bookworm with Python 3.11" in text, text[-3000:]
    assert "COPY --from=build /out /opt/app/" in text
    r = sb.process.exec("cat /opt/app/artifact /opt/app/uid /opt/app/pyversion; echo $APP_GREETING")
    lines = r.result.split("\n")
    assert lines[:4] == ["built in stage one", "0", "(3, 11)", "hello"], r.result
    # The image's own python runs code_run; pip is there, as in the official image.
    code = "import sys; print(sys.version_info[:2])"
    assert sb.process.code_run(code).result.strip() == "(3, 11)"
    assert "pip" in sb.process.exec("pip --version").result


def test_image_files_are_not_writable_by_the_sandbox(built: tuple[Any, list[str], float]) -> None:
    sb, _, _ = built
    r = sb.process.exec("echo x > /opt/app/artifact 2>&1; echo rc=$?; cat /opt/app/artifact")
    assert "rc=1" in r.result and "built in stage one" in r.result


def test_an_unchanged_rebuild_is_instant(daytona: Any, built: tuple[Any, list[str], float]) -> None:
    logs: list[str] = []
    started = time.monotonic()
    sb = _create(daytona, MULTI_STAGE, logs)
    try:
        elapsed = time.monotonic() - started
        assert sb.state == "started"
        assert sb.process.exec("cat /opt/app/artifact").result.strip() == "built in stage one"
    finally:
        daytona.delete(sb)
    print(f"cached rebuild + create: {elapsed:.2f}s")
    assert elapsed < 5, elapsed


def test_a_deleted_sandbox_takes_its_build_log(
    daytona: Any, server: ServerProcess, built: tuple[Any, list[str], float]
) -> None:
    # Kept for ever, every image create left a file and an in-memory job (make soak).
    sb = _create(daytona, MULTI_STAGE, [])
    log = server.data_dir / "build-logs" / f"{sb.id}.log"
    assert log.exists()  # readable while the sandbox lives
    daytona.delete(sb)
    assert not log.exists()


def test_a_changed_last_step_rebuilds_only_that_step(
    daytona: Any, built: Any, api: httpx.Client
) -> None:
    logs: list[str] = []
    sb = _create(daytona, MULTI_STAGE + "RUN echo changed > /opt/app/last\n", logs)
    try:
        sid = sb.id
        log = api.get(f"/api/sandbox/{sid}/build-logs").text
        assert log.count("cached layer") == 3, log  # both stages' RUN and the COPY
        assert log.count(" ---> layer ") == 1, log
        assert sb.process.exec("cat /opt/app/last").result.strip() == "changed"
    finally:
        daytona.delete(sb)


def test_a_failing_step_is_build_failed_with_its_log(daytona: Any, built: Any) -> None:
    from daytona import DaytonaError

    logs: list[str] = []
    with pytest.raises(DaytonaError) as err:
        _create(daytona, "FROM python:3.11-slim\nRUN echo about to fail; exit 3\n", logs)
    assert "line 2 (RUN) failed: exit status 3" in str(err.value)
    assert any("about to fail" in line for line in logs), logs


def test_a_run_after_a_non_root_user_says_how_it_runs(daytona: Any) -> None:
    # One id is mapped in a build's namespace: the RUN runs as its root, and the
    # build log says so rather than pretending to be `nobody`.
    logs: list[str] = []
    sb = _create(daytona, "FROM python:3.11-slim\nUSER nobody\nRUN id -u > /opt/run-uid\n", logs)
    try:
        assert any("USER nobody: later RUN steps still run as root" in line for line in logs), logs
        r = sb.process.exec("cat /opt/run-uid")
        assert r.result.strip() == "0", r.result
    finally:
        daytona.delete(sb)


def test_a_python_version_no_suite_has_is_a_clear_error(daytona: Any) -> None:
    from daytona import DaytonaError

    with pytest.raises(DaytonaError) as err:
        _create(daytona, "FROM python:3.9.23-slim\n", [])
    message = str(err.value)
    assert "no base with Python 3.9" in message
    assert "python:3.11-slim (bookworm)" in message and "python:3.13-slim (trixie)" in message


def test_an_unsupported_instruction_is_a_400(api: httpx.Client) -> None:
    r = api.post(
        "/api/sandbox",
        json={
            "labels": {},
            "buildInfo": {"dockerfileContent": "FROM python:3.11\nHEALTHCHECK CMD true\n"},
        },
    )
    assert r.status_code == 400
    assert "line 2 (HEALTHCHECK)" in r.json()["message"]
