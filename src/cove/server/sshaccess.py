"""SSH access tokens: Daytona's create/validate/revoke calls, and the check the SSH server makes.

A token is the SSH user name (`ssh TOKEN@HOST -p PORT`): it names one sandbox
and grants a shell in it until it expires or is revoked. Only its SHA-256 is
stored, so the database never holds a usable credential. Expiry is counted in
the server's "minutes" (`lifecycle_minute`, shortened by tests as for the
auto-stop intervals). Revoking tells the SSH server (`on_revoke`), which
closes the connections that logged in with the token.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
import uuid
from collections.abc import Callable

from cove.server.records import SandboxRecord, SshGrant
from cove.server.sandboxes import SandboxService
from cove.wire.errors import BadRequest, Conflict
from cove.wire.protocol.ssh import SshAccess, SshAccessValidation

DEFAULT_MINUTES = 60  # Daytona's default
MAX_MINUTES = 60 * 24 * 365
# Letters and digits only: a token is typed as `TOKEN@host`, so it may not
# start with '-' (ssh would read an option) or hold '@' or ':'.
ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 32  # ~190 bits

# Called with a sandbox id and the hash of the revoked token (None: all its tokens).
RevokeHook = Callable[[str, str | None], None]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def parse_minutes(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_MINUTES
    try:
        minutes = int(raw)
    except ValueError:
        raise BadRequest(f"query 'expiresInMinutes' must be an integer, got {raw!r}") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise BadRequest(f"query 'expiresInMinutes' must be between 1 and {MAX_MINUTES}")
    return minutes


class SshAccessService:
    def __init__(self, sandboxes: SandboxService) -> None:
        self.sandboxes = sandboxes
        self.store = sandboxes.store
        self.minute = sandboxes.settings.lifecycle_minute
        self.port = sandboxes.settings.ssh_port  # 0: no SSH server
        self.on_revoke: list[RevokeHook] = []

    def create(self, owner: str, ref: str, minutes: int, host: str) -> SshAccess:
        if not self.port:
            raise Conflict(
                "this server runs no SSH server: start it with `cove serve --ssh-port PORT` "
                "(or COVE_SSH_PORT)"
            )
        r = self.sandboxes.get(owner, ref)
        now = time.time()
        self.store.prune_ssh_access(now)
        token = "".join(secrets.choice(ALPHABET) for _ in range(TOKEN_LENGTH))
        expires = now + minutes * self.minute
        grant = SshGrant(token_hash(token), str(uuid.uuid4()), r.id, now, expires)
        self.store.add_ssh_access(grant)
        host_part = f"[{host}]" if ":" in host else host  # an IPv6 literal
        return SshAccess(
            id=grant.id,
            sandbox_id=r.id,
            token=token,
            expires_at=iso(grant.expires_at),
            created_at=iso(now),
            updated_at=iso(now),
            ssh_command=f"ssh -p {self.port} {token}@{host_part}",
        )

    def validate(self, owner: str, token: str) -> SshAccessValidation:
        r = self.authorize(token)
        if r is None or r.owner != owner:  # another key's token is not ours to confirm
            return SshAccessValidation(valid=False, sandbox_id="")
        return SshAccessValidation(valid=True, sandbox_id=r.id)

    def revoke(self, owner: str, ref: str, token: str | None) -> SandboxRecord:
        r = self.sandboxes.get(owner, ref)
        digest = token_hash(token) if token else None
        self.store.revoke_ssh_access(r.id, digest)
        for hook in self.on_revoke:
            hook(r.id, digest)
        return r

    def authorize(self, token: str) -> SandboxRecord | None:
        """The sandbox a token opens now, or None (unknown, expired, revoked, sandbox gone)."""
        grant = self.store.get_ssh_access(token_hash(token))
        if grant is None or grant.expires_at <= time.time():
            return None
        return self.store.get_any(grant.sandbox_id)

    def still_valid(self, digest: str) -> bool:
        grant = self.store.get_ssh_access(digest)
        return grant is not None and grant.expires_at > time.time()
