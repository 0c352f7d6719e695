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
    read = headers(sid, **{"x-csrf-token": session.csrf})
    assert book.authorize(read, "GET", websocket=False) == key_hash("alpha")
    with pytest.raises(AuthError):
        book.sign_in("gamma")


def test_reads_and_websockets_need_the_token_too(book: SessionBook) -> None:
    """A path-form preview shares the origin: the cookie alone must open nothing."""
    sid, session = book.sign_in("alpha")
    with pytest.raises(AccessDenied, match="CSRF"):
        book.authorize(headers(sid), "GET", websocket=False)
    with pytest.raises(AccessDenied, match="CSRF"):
        book.authorize(headers(sid, origin="http://h:3000"), "GET", websocket=True)
    with pytest.raises(AccessDenied, match="CSRF"):
        book.authorize(headers(sid), "GET", websocket=False, query="csrf_token=wrong")
    query = f"follow=true&csrf_token={session.csrf}"
    assert book.authorize(headers(sid), "GET", websocket=False, query=query)


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
    token = f"csrf_token={session.csrf}"
    with pytest.raises(AccessDenied, match="origin"):
        book.authorize(headers(sid), "GET", websocket=True, query=token)  # no Origin at all
    assert book.authorize(headers(sid, origin="http://h:3000"), "GET", websocket=True, query=token)


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


def _rows(store: Store) -> list[tuple[str, ...]]:
    return store.db.execute("SELECT id_hash, owner, csrf FROM dashboard_sessions").fetchall()


def test_sessions_outlive_a_restart_and_only_their_hash_is_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "cove.db")
    sid, session = SessionBook(KeyRing(store, ["alpha"])).sign_in("alpha")
    store.close()
    # A new process: a new store on the same file, a new book.
    store = Store(tmp_path / "cove.db")
    again = SessionBook(KeyRing(store, ["alpha"])).get(sid)
    assert again is not None and again.owner == key_hash("alpha") and again.csrf == session.csrf
    ((id_hash, _, _),) = _rows(store)
    assert id_hash != sid and sid not in (tmp_path / "cove.db").read_bytes().decode("latin-1")


def test_sign_out_expiry_and_the_cap_delete_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "cove.db")
    book = SessionBook(KeyRing(store, ["alpha"]))
    sid, _ = book.sign_in("alpha")
    book.sign_out(sid)
    assert _rows(store) == []
    expired = SessionBook(KeyRing(store, ["alpha"]), lifetime=-1)
    old, _ = expired.sign_in("alpha")
    assert len(_rows(store)) == 1
    assert expired.get(old) is None and _rows(store) == []  # read once past expiry: gone
    expired.sign_in("alpha")
    book.sign_in("alpha")  # a sign-in sweeps what expired meanwhile
    assert len(_rows(store)) == 1
    monkeypatch.setattr("cove.server.dashboard.sessions.MAX_SESSIONS", 3)
    sids = [book.sign_in("alpha")[0] for _ in range(5)]
    assert len(_rows(store)) == 3
    assert book.get(sids[0]) is None and book.get(sids[-1]) is not None
