"""Dashboard sessions: the cookie maps to a key hash, ends with its lifetime or its key,
and a session alone cannot change anything (CSRF token, Origin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.server.auth import KeyRing, key_hash
from cove.server.dashboard.sessions import SessionBook, request_owner, same_origin
from cove.server.store import Store
from cove.wire.errors import AccessDenied, AuthError


@pytest.fixture
def book(tmp_path: Path) -> SessionBook:
    return SessionBook(KeyRing(Store(tmp_path / "cove.db"), ["alpha", "beta"]))


def headers(sid: str, **more: str) -> dict[str, str]:
    return {"cookie": f"other=1; cove_session={sid}", "host": "h:3000", **more}


def test_session_stands_for_the_key_hash_never_the_key(book: SessionBook) -> None:
    sid, session = book.sign_in("alpha")
    assert session.owner == key_hash("alpha") and "alpha" not in (sid, session.csrf)
    assert book.authorize(headers(sid), "GET", websocket=False) == key_hash("alpha")
    with pytest.raises(AuthError):
        book.sign_in("gamma")


def test_unsafe_methods_need_the_token_and_our_origin(book: SessionBook) -> None:
    sid, session = book.sign_in("alpha")
    with pytest.raises(AccessDenied, match="CSRF"):
        book.authorize(headers(sid), "DELETE", websocket=False)
    with pytest.raises(AccessDenied, match="cross-origin"):
        book.authorize(
            headers(sid, **{"x-csrf-token": session.csrf, "origin": "http://evil:3000"}),
            "POST", websocket=False,
        )  # fmt: skip
    ok = headers(sid, **{"x-csrf-token": session.csrf, "origin": "http://h:3000"})
    assert book.authorize(ok, "POST", websocket=False) == key_hash("alpha")
    with pytest.raises(AccessDenied, match="origin"):
        book.authorize(headers(sid), "GET", websocket=True)  # no Origin at all
    assert book.authorize(headers(sid, origin="http://h:3000"), "GET", websocket=True)


def test_expiry_sign_out_and_a_removed_key_end_sessions(tmp_path: Path) -> None:
    store = Store(tmp_path / "cove.db")
    book = SessionBook(KeyRing(store, ["alpha"]), lifetime=-1)
    sid, _ = book.sign_in("alpha")
    assert book.get(sid) is None  # already expired
    book = SessionBook(KeyRing(store, ["alpha"]))
    sid, _ = book.sign_in("alpha")
    book.sign_out(sid)
    assert book.get(sid) is None
    sid, _ = book.sign_in("alpha")
    book.keys = KeyRing(store, ["beta"])  # the configuration no longer has the key
    with pytest.raises(AuthError, match="sign in again"):
        book.authorize(headers(sid), "GET", websocket=False)


def test_an_api_key_wins_over_a_cookie(book: SessionBook) -> None:
    both = headers("junk", authorization="Bearer beta")
    assert request_owner(book.keys, book, both, "POST") == key_hash("beta")
    with pytest.raises(AuthError, match="missing API key"):
        request_owner(book.keys, book, {"cookie": "preview=1"}, "GET")


def test_same_origin() -> None:
    assert same_origin("http://127.0.0.1:3000", "127.0.0.1:3000")
    assert not same_origin("null", "127.0.0.1:3000")
    assert not same_origin("http://127.0.0.1:3001", "127.0.0.1:3000")
    assert not same_origin("", "127.0.0.1:3000")
