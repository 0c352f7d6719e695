"""Runtime backends, chosen by name from a table (`auto` picks the best available)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cove.runtime.base import RuntimeBackend, RuntimeHandle, SandboxSpec

if TYPE_CHECKING:
    from cove.settings import Settings

__all__ = ["BACKENDS", "RuntimeBackend", "RuntimeHandle", "SandboxSpec", "make_backend"]


def _local(settings: Settings) -> RuntimeBackend:
    from cove.runtime.local import LocalBackend

    return LocalBackend(
        settings.data_dir,
        settings.runtime_dir,
        sandbox_root=settings.sandbox_root,
        warm_pool=settings.warm_pool,
        network=settings.network,
        network_dns=settings.network_dns or None,
    )


BACKENDS: dict[str, Callable[[Settings], RuntimeBackend]] = {"local": _local}


def make_backend(settings: Settings) -> RuntimeBackend:
    """The backend `settings.backend` names, built from the settings."""
    name = settings.backend
    if name == "auto":
        name = "local"
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown runtime backend {name!r}; choose from: auto, {', '.join(BACKENDS)}"
        ) from None
    return factory(settings)
