"""Who may open a preview, and the tokens that say so.

A sandbox's preview token is derived, not stored: HMAC(server secret,
sandbox id). It stays the same for the sandbox's life, dies with it, and
needs no column in the sandbox record. It is accepted from the
`x-daytona-preview-token` header (programs, as Daytona), from a cookie set by
a first visit with `?token=` (browsers), or not at all once the sandbox is
public. Signed URLs carry their own random token in place of the sandbox id;
the store keeps them with their port and expiry, so they can be expired early.

Failures never show the sandbox's content: 401 for a missing, wrong or
expired credential on a sandbox that exists, 404 for anything unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from cove.server.preview.address import Address
from cove.server.records import SandboxRecord
from cove.server.store import Store
from cove.wire.errors import AuthError, BadRequest, NotFound

SECRET_FILE = "preview-secret"
TOKEN_HEADER = "x-daytona-preview-token"
COOKIE = "cove_preview_token"
QUERY = "token"
DEFAULT_SIGNED_SECONDS = 60  # Daytona's default
MAX_SIGNED_SECONDS = 7 * 24 * 3600


def load_or_generate_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    path.touch(mode=0o600)
    path.write_text(secret.hex() + "\n")
    return secret


@dataclass
class Grant:
    """A preview request allowed through: to which sandbox, and what to tell the client."""

    record: SandboxRecord
    port: int
    target: str  # the target the app gets (a matching `?token=` taken out)
    set_cookie: str | None = None  # first visit with `?token=`: the browser keeps it


class PreviewAccess:
    def __init__(self, store: Store, secret: bytes) -> None:
        self.store = store
        self.secret = secret

    def token_for(self, sandbox_id: str) -> str:
        mac = hmac.new(self.secret, b"preview:" + sandbox_id.encode(), hashlib.sha256)
        return mac.hexdigest()[:40]

    # -- signed URLs -------------------------------------------------------------

    def sign(self, record: SandboxRecord, port: int, seconds: int | None) -> tuple[str, float]:
        seconds = DEFAULT_SIGNED_SECONDS if seconds is None else seconds
        if not 1 <= seconds <= MAX_SIGNED_SECONDS:
            raise BadRequest(
                f"expiresInSeconds must be from 1 to {MAX_SIGNED_SECONDS}, got {seconds}"
            )
        token = secrets.token_hex(16)  # lower-case: it is a DNS label in the host form
        expires_at = time.time() + seconds
        self.store.add_signed_preview(token, record.id, port, expires_at)
        return token, expires_at

    def expire(self, record: SandboxRecord, port: int, token: str) -> None:
        if not self.store.expire_signed_preview(token, record.id, port):
            raise NotFound(f"no signed preview URL {token!r} for port {port} of this sandbox")

    # -- checking a request --------------------------------------------------------

    def authorize(self, addr: Address, headers: dict[str, str]) -> Grant:
        """May this request reach `addr`? A `Grant`, or an `AuthError`/`NotFound`."""
        record = self.store.get_any(addr.ref)
        if record is None:
            return self._signed(addr)
        grant = Grant(record, addr.port, addr.target)
        if record.spec.public:
            return grant
        expected = self.token_for(record.id)
        header = headers.get(TOKEN_HEADER)
        if header is not None:
            if not hmac.compare_digest(header.encode(), expected.encode()):
                raise AuthError("wrong preview token for this sandbox")
            return grant
        path, _, query = addr.target.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        offered = [v for k, v in pairs if k == QUERY]
        if any(hmac.compare_digest(v.encode(), expected.encode()) for v in offered):
            # The app never sees our token; a `token` of its own (Jupyter's) stays.
            kept = [(k, v) for k, v in pairs if not (k == QUERY and v == expected)]
            grant.target = path + ("?" + urlencode(kept) if kept else "")
            grant.set_cookie = self._cookie(addr, expected)
            return grant
        cookie = cookie_value(headers.get("cookie", ""))
        if cookie is not None and hmac.compare_digest(cookie.encode(), expected.encode()):
            return grant
        if cookie is not None or offered:
            raise AuthError("wrong preview token for this sandbox")
        raise AuthError(
            "this preview is private: send the sandbox's preview token in the "
            f"'{TOKEN_HEADER}' header, or open the URL once with ?{QUERY}=TOKEN"
        )

    def _signed(self, addr: Address) -> Grant:
        found = self.store.signed_preview(addr.ref)
        if found is None:
            raise NotFound(f"no preview at {addr.ref!r}: no such sandbox or signed URL")
        sandbox_id, port, expires_at = found
        if port != addr.port:
            raise AuthError(f"this signed URL is for port {port}, not {addr.port}")
        if expires_at < time.time():
            raise AuthError("this signed preview URL has expired")
        record = self.store.get_any(sandbox_id)
        if record is None:
            raise NotFound("the sandbox of this signed preview URL no longer exists")
        return Grant(record, port, addr.target)

    @staticmethod
    def _cookie(addr: Address, token: str) -> str:
        # Path form: scoped to this sandbox port's prefix; host form: the host's own.
        path = addr.prefix or "/"
        return f"{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Lax"


def cookie_value(header: str) -> str | None:
    if COOKIE not in header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def strip_cookie(header: str) -> str:
    """The Cookie header without ours (the app has no business with the preview token)."""
    parts = [p for p in header.split(";") if p.strip().partition("=")[0] != COOKIE]
    return ";".join(parts).strip()
