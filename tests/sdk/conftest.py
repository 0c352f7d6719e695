"""Fixtures for the Cove SDK: its clients against the session's real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cove.sdk import Cove, Sandbox
from tests.serverproc import ServerProcess


@pytest.fixture
def cove_env(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """COVE_API_URL / COVE_API_KEY set, so `Cove()` reads them as Daytona() reads its own."""
    monkeypatch.setenv("COVE_API_URL", server.api_url)
    monkeypatch.setenv("COVE_API_KEY", server.key)
    return server


@pytest.fixture(scope="module")
def cove(server: ServerProcess) -> Iterator[Cove]:
    """A sync client; closing it deletes the sandboxes it created."""
    with Cove(api_url=server.api_url, api_key=server.key) as client:
        yield client


@pytest.fixture(scope="module")
def csb(cove: Cove) -> Sandbox:
    """One started sandbox per test module, made by the Cove SDK."""
    return cove.create()
