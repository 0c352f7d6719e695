"""Fixtures shared by the security tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def neighbour(other_daytona: Any) -> Iterator[Any]:
    """A second tenant's sandbox next to the one under attack."""
    sb = other_daytona.create()
    try:
        yield sb
    finally:
        other_daytona.delete(sb)
