"""The access log's token filter: every form a token travels in is rewritten, other lines kept."""

from __future__ import annotations

import pytest

from cove.server.logredact import REDACTED, redact

SIGNED = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /preview/sb/8080/?token=s3cret HTTP/1.1", "s3cret"),
        ("GET /app?page=2&Access_TOKEN=s3cret&x=1", "s3cret"),  # any case, any prefix
        (f"GET /preview/{SIGNED}/index.html", SIGNED),
        (f"GET /preview/{SIGNED}?a=1", SIGNED),
        ("POST /api/sandbox/sb/ports/8080/signed-preview-url/s3cret/expire", "s3cret"),
    ],
)
def test_a_token_in_any_of_its_places_is_redacted(line: str, secret: str) -> None:
    out = redact(line)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "line",
    [
        "POST /toolbox/3f2a/process/execute HTTP/1.1",
        "GET /api/sandbox?labels=%7B%7D",
        "GET /preview/sb/8080/assets/app.js",  # a preview path without a signed token
    ],
)
def test_a_line_without_a_token_is_left_as_it_is(line: str) -> None:
    assert redact(line) == line
