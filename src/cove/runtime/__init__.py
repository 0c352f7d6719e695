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
        network_conn_cap=settings.network_conn_cap,
        image_dir=settings.image_dir,
        disk_quota=settings.disk_quota,
        build_ca_bundle=settings.build_ca_bundle,
    )


def _ray(settings: Settings) -> RuntimeBackend:
    if not settings.ray_address:
        raise ValueError(
            "the ray backend needs a cluster address: --ray-address or COVE_RAY_ADDRESS"
        )
    try:
        from cove.runtime.ray import RayBackend
        from cove.runtime.ray.node import NodeOptions
    except ImportError as exc:
        raise ValueError(f"the ray backend needs Ray: pip install 'cove[ray]' ({exc})") from None
    return RayBackend(
        settings.ray_address,
        settings.data_dir,
        secret=settings.ray_secret.encode() if settings.ray_secret else None,
        node_dir=settings.ray_node_dir,
        runtime_dir=settings.runtime_dir,
        placement_timeout=settings.ray_placement_timeout,
        relay_port=settings.ray_relay_port,
        node_options=NodeOptions(
            network=settings.network,
            network_dns=settings.network_dns,
            network_conn_cap=settings.network_conn_cap,
            warm_pool=settings.ray_warm_pool,
        ),
        image_dir=settings.image_dir,
    )


BACKENDS: dict[str, Callable[[Settings], RuntimeBackend]] = {"local": _local, "ray": _ray}


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
