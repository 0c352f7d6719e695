"""Preview links to sandbox ports (Daytona's PortPreviewUrl and SignedPortPreviewUrl)."""

from __future__ import annotations

from dataclasses import dataclass

from cove.wire.model import WireModel


@dataclass
class PortPreviewUrl(WireModel):
    """A port's preview URL; `token` goes in `x-daytona-preview-token` (or `?token=` once)."""

    sandbox_id: str
    url: str
    token: str


@dataclass
class SignedPortPreviewUrl(WireModel):
    """A self-contained preview URL: its token is part of the URL, until it expires."""

    sandbox_id: str
    port: int
    token: str
    url: str
    expires_at: str | None = None  # Cove: when it stops working (ISO 8601, UTC)
