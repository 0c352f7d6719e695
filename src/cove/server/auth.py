"""API keys: which are accepted, and which owner a key is.

Keys are kept as SHA-256 hashes; a sandbox belongs to the hash of the key
that created it. With no key configured, one is generated at first start and
kept (0600) in the data directory, so that a person can read it back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from cove.server.errors import reject
from cove.server.store import Store
from cove.wire.errors import AuthError

KEY_FILE = "api-key"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_or_generate_key(data_dir: Path) -> tuple[str, bool]:
    """The data dir's own key, and whether it was generated now."""
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_text().strip(), False
    key = "cove_" + secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key, True


class KeyRing:
    def __init__(self, store: Store, configured: list[str]) -> None:
        self.store = store
        for i, key in enumerate(configured):
            store.add_key_hash(key_hash(key), f"configured-{i}")
        # Only the configured keys are accepted (a key removed from the
        # configuration stops working, its sandboxes stay in the store).
        self._accepted = {key_hash(k) for k in configured}

    def owner_of(self, authorization: str | None) -> str:
        if not authorization:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("malformed Authorization header: expected 'Bearer <key>'")
        digest = key_hash(key.strip())
        for accepted in self._accepted:
            if hmac.compare_digest(digest, accepted):
                return digest
        raise AuthError("invalid API key")


class AuthMiddleware:
    """Every request and WebSocket outside `open_paths` (exact paths, not
    prefixes: a later `/health-details` must not be open by accident) carries a
    valid key.

    The owner (the key's hash) goes into the scope's state for the routes;
    a bad key is answered here, before any route runs.
    """

    def __init__(self, app: ASGIApp, keys: KeyRing, open_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in self.open_paths:
            header = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            try:
                owner = self.keys.owner_of(header)
            except AuthError as err:
                await reject(scope, receive, send, err)
                return
            scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)
