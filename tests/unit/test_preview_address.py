"""Preview addresses and the header rewriting of the path form, without a server."""

from __future__ import annotations

import pytest

from cove.server.preview.access import COOKIE, cookie_value, strip_cookie
from cove.server.preview.address import from_host, from_path, locate, referred_prefix
from cove.server.preview.upstream import request_head, response_headers
from cove.wire import http1
from cove.wire.errors import BadRequest

SID = "0b7c6a52-3f8e-4c3e-9a43-2f0d7c1e9b11"


def test_path_form() -> None:
    addr = from_path(f"/preview/{SID}/8080/a%2Fb/c?x=1&y")
    assert addr is not None
    assert (addr.ref, addr.port, addr.prefix) == (SID, 8080, f"/preview/{SID}/8080")
    assert addr.target == "/a%2Fb/c?x=1&y" and not addr.bare  # kept as the client encoded it
    bare = from_path(f"/preview/{SID}/8080?q=1")
    assert bare is not None and bare.bare and bare.target == "/?q=1"
    assert from_path("/api/sandbox") is None


BAD_TARGETS = [
    f"/preview/{SID}/0/", f"/preview/{SID}/65536/", f"/preview/{SID}/http/", "/preview/",
    f"/preview/{SID}",
]  # fmt: skip


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_bad_path_form(target: str) -> None:
    with pytest.raises(BadRequest):
        from_path(target)


def test_host_form() -> None:
    addr = from_host(f"3000-{SID}.Preview.Example.com:8443", "/x?y=1", "preview.example.com")
    assert addr is not None and (addr.ref, addr.port, addr.prefix, addr.target) == (
        SID, 3000, "", "/x?y=1",
    )  # fmt: skip
    assert from_host("preview.example.com", "/", "preview.example.com") is None
    assert from_host(f"3000-{SID}.other.com", "/", "preview.example.com") is None
    assert from_host(f"3000-{SID}.preview.example.com", "/", "") is None
    with pytest.raises(BadRequest):
        from_host(f"99999-{SID}.preview.example.com", "/", "preview.example.com")
    # The host form wins over a path that looks like the path form.
    both = locate(f"80-{SID}.p.test", f"/preview/{SID}/8080/", "p.test")
    assert both is not None and both.port == 80 and both.target == f"/preview/{SID}/8080/"


def test_referred_prefix() -> None:
    page = f"http://h:1/preview/{SID}/8080/index.html?x"
    assert referred_prefix("/static/app.js", page, "h:1") == f"/preview/{SID}/8080"
    assert referred_prefix("/static/app.js", page, "other:1") is None
    assert referred_prefix("/api/sandbox", page, "h:1") is None
    assert referred_prefix("/health", page, "h:1") is None
    assert referred_prefix("/static/app.js", None, "h:1") is None
    assert referred_prefix("/x", "http://h:1/elsewhere", "h:1") is None


def test_cookies() -> None:
    header = f"a=1; {COOKIE}=tok; b=2"
    assert cookie_value(header) == "tok"
    assert strip_cookie(header) == "a=1; b=2"
    assert cookie_value("a=1") is None


def test_request_head_drops_hop_by_hop_and_our_credential() -> None:
    head = request_head(
        "POST", "/x",
        [("host", "h"), ("connection", "keep-alive"), ("x-daytona-preview-token", "t"),
         ("cookie", f"{COOKIE}=t"), ("transfer-encoding", "chunked"), ("accept", "*/*")],
        prefix="/preview/s/80", client="10.0.0.1", scheme="http",
    )  # fmt: skip
    parsed = http1.parse_request(head)
    assert parsed.headers["connection"] == "close" and parsed.headers["accept"] == "*/*"
    assert "x-daytona-preview-token" not in parsed.headers and "cookie" not in parsed.headers
    assert parsed.headers["transfer-encoding"] == "chunked"
    assert parsed.headers["x-forwarded-prefix"] == "/preview/s/80"
    assert parsed.headers["x-forwarded-for"] == "10.0.0.1"


def test_response_headers_move_under_the_prefix() -> None:
    fields = [
        ("location", "/login"), ("set-cookie", "sid=1; Path=/; HttpOnly"),
        ("transfer-encoding", "chunked"), ("content-type", "text/html"),
    ]  # fmt: skip
    out = dict(response_headers(fields, "/preview/s/80"))
    assert out[b"location"] == b"/preview/s/80/login"
    assert out[b"set-cookie"] == b"sid=1; Path=/preview/s/80/; HttpOnly"
    assert b"transfer-encoding" not in out
    kept = dict(response_headers([("location", "//cdn.example/x")], "/preview/s/80"))
    assert kept[b"location"] == b"//cdn.example/x"
    assert dict(response_headers([("location", "/a")], ""))[b"location"] == b"/a"


def test_path_form_drops_headers_that_reach_the_whole_origin() -> None:
    """A path-form app shares the control plane's origin (and the dashboard's)."""
    fields = [("service-worker-allowed", "/"), ("clear-site-data", '"cookies"'),
              ("content-type", "text/html")]  # fmt: skip
    out = dict(response_headers(fields, "/preview/s/80"))
    assert out == {b"content-type": b"text/html"}
    own_host = dict(response_headers(fields, ""))  # the host form has its own origin
    assert own_host[b"service-worker-allowed"] == b"/"
