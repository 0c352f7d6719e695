"""Browser sessions: an opaque cookie mapped, on the server, to the hash of an API key.

The key itself is sent once (at sign-in) and never stored: not in the browser
(the cookie holds a random id, HttpOnly, SameSite=Strict) and not here (only
its SHA-256, which is what owns sandboxes). Each session has its own CSRF
token, which the page sends back in `X-CSRF-Token` on every state-changing
request; a request authorised by the cookie alone cannot change anything.

Sessions live in the store, so a control-plane restart signs no one out.
The store holds the SHA-256 of each cookie id, never the id itself: whoever
reads the database cannot present a session. Expiry, sign-out and the key
leaving the configuration each delete the row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from cove.wire.errors import AccessDenied, AuthError

if TYPE_CHECKING:  # auth imports this module to accept session cookies
    from cove.server.auth import KeyRing
    from cove.server.store import Store

COOKIE = "cove_session"
CSRF_HEADER = "x-csrf-token"
CSRF_QUERY = "csrf_token"  # ends in "token": the access log redacts it
LIFETIME = 12 * 3600.0  # seconds a session lasts from sign-in
MAX_SESSIONS = 10_000  # oldest dropped past this: sign-in cannot grow the table without bound
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Session:
    owner: str  # the key's hash
    csrf: str
    expires: float


class SessionBook:
    def __init__(self, keys: KeyRing, lifetime: float = LIFETIME) -> None:
        self.keys = keys
        self.lifetime = lifetime

    @property
    def store(self) -> Store:
        return self.keys.store

    def sign_in(self, key: str) -> tuple[str, Session]:
        """A new session for a valid key: (cookie value, session). AuthError otherwise."""
        owner = self.keys.owner_of(f"Bearer {key.strip()}")
        sid = secrets.token_urlsafe(32)
        session = Session(owner, secrets.token_urlsafe(32), time.time() + self.lifetime)
        self.store.add_dashboard_session(
            _hash(sid), owner, session.csrf, session.expires, MAX_SESSIONS
        )
        return sid, session

    def sign_out(self, sid: str) -> None:
        self.store.delete_dashboard_session(_hash(sid))

    def get(self, sid: str | None) -> Session | None:
        """The live session for a cookie value, if any (a removed key ends its sessions)."""
        if not sid:
            return None
        found = self.store.dashboard_session(_hash(sid))
        if found is None:
            return None
        session = Session(*found)
        if session.expires < time.time() or not self.keys.accepts(session.owner):
            self.sign_out(sid)
            return None
        return session

    def authorize(
        self, headers: dict[str, str], method: str, websocket: bool, query: str = ""
    ) -> str:
        """The owner for a request carrying the session cookie, or an error naming why not.

        `headers` has lower-case names. Every request, reads too, needs the session's
        CSRF token (header, or `csrf_token` in the query where a browser cannot set
        headers: WebSockets, download links): in the path form a preview's page shares
        this origin, and the cookie alone would let its script read files or open a
        terminal. A WebSocket also needs an Origin of this very server (browsers send
        cookies on cross-site WebSocket handshakes).
        """
        session = self.get(cookie_value(headers.get("cookie", ""), COOKIE))
        if session is None:
            raise AuthError("not signed in, or the session has expired: sign in again")
        token = headers.get(CSRF_HEADER) or _query_token(query)
        if not token or not hmac.compare_digest(token, session.csrf):
            raise AccessDenied(
                f"missing or wrong CSRF token (header '{CSRF_HEADER}' or query '{CSRF_QUERY}')"
            )
        if websocket:
            if not same_origin(headers.get("origin", ""), headers.get("host", "")):
                raise AccessDenied("a dashboard WebSocket must come from the dashboard's origin")
        elif method.upper() not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin and not same_origin(origin, headers.get("host", "")):
                raise AccessDenied("cross-origin request refused")
        return session.owner


def _query_token(query: str) -> str:
    values = parse_qs(query, max_num_fields=50).get(CSRF_QUERY) if query else None
    return values[0] if values else ""


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def request_owner(
    keys: KeyRing, sessions: SessionBook | None, headers: dict[str, str], method: str,
    websocket: bool = False, query: str = "",
) -> str:  # fmt: skip
    """Who sends a request: its API key, else (no Authorization at all) its session cookie."""
    if (
        sessions is not None
        and "authorization" not in headers
        and cookie_value(headers.get("cookie", ""), COOKIE) is not None
    ):
        return sessions.authorize(headers, method, websocket, query)
    return keys.owner_of(headers.get("authorization"))


def cookie_value(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def same_origin(origin: str, host: str) -> bool:
    """Whether `Origin` names the host the request was sent to (scheme aside)."""
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
