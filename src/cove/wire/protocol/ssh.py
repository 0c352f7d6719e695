"""SSH access wire models (Daytona's SshAccessDto and SshAccessValidationDto)."""

from __future__ import annotations

from dataclasses import dataclass

from cove.wire.model import WireModel


@dataclass
class SshAccess(WireModel):
    """A token that logs in as the SSH user name, and the command that uses it."""

    id: str
    sandbox_id: str
    token: str
    expires_at: str
    created_at: str
    updated_at: str
    ssh_command: str


@dataclass
class SshAccessValidation(WireModel):
    """Whether a token opens a sandbox now; `sandboxId` is "" for a token nobody knows."""

    valid: bool
    sandbox_id: str
