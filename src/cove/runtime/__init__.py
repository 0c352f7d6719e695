"""Runtime backends, chosen by name from a table (`auto` picks the best available)."""

from __future__ import annotations

from pathlib import Path

from cove.runtime.base import RuntimeBackend, RuntimeHandle, SandboxSpec

__all__ = ["BACKENDS", "RuntimeBackend", "RuntimeHandle", "SandboxSpec", "make_backend"]


def _local(data_dir: Path, runtime_dir: Path | None) -> RuntimeBackend:
    from cove.runtime.local import LocalBackend

    return LocalBackend(data_dir, runtime_dir)


BACKENDS = {"local": _local}


def make_backend(name: str, data_dir: Path, runtime_dir: Path | None = None) -> RuntimeBackend:
    if name == "auto":
        name = "local"
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown runtime backend {name!r}; choose from: auto, {', '.join(BACKENDS)}"
        ) from None
    return factory(data_dir, runtime_dir)
