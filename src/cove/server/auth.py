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

from cove.server.dashboard.sessions import SessionBook, request_owner
from cove.server.errors import reject
from cove.server.store import Store
from cove.wire.errors import AuthError, CoveError

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

    def accepts(self, owner: str) -> bool:
        """Whether the key hashed as `owner` is still configured (sessions end with their key)."""
        return owner in self._accepted


class AuthMiddleware:
    """Every request and WebSocket outside `open_paths` (exact paths, not
    prefixes: a later `/health-details` must not be open by accident) and
    `open_prefixes` carries a valid key, or a dashboard session cookie (see
    `dashboard.sessions`: CSRF token on unsafe methods).

    The owner (the key's hash) goes into the scope's state for the routes;
    a bad key is answered here, before any route runs.
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyRing,
        open_paths: tuple[str, ...] = (),
        open_prefixes: tuple[str, ...] = (),
        sessions: SessionBook | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes  # the dashboard's static files only
        self.sessions = sessions  # the dashboard's session cookies stand for a key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] in ("http", "websocket")
            and path not in self.open_paths
            and not path.startswith(self.open_prefixes)
        ):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            websocket = scope["type"] == "websocket"
            method = "GET" if websocket else scope["method"]
            try:
                query = scope.get("query_string", b"").decode("latin-1")
                owner = request_owner(self.keys, self.sessions, headers, method, websocket, query)
            except CoveError as err:  # AuthError, or AccessDenied (CSRF, Origin)
                await reject(scope, receive, send, err)
                return
            scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)
