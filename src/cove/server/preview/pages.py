"""The small HTML pages a preview answers with when it cannot show the app."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

from cove.wire.errors import CoveError

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{status} {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#333}}
code{{background:#eee;padding:0 .2em}}</style></head>
<body><h1>{status} {title}</h1><p>{message}</p><p><small>Cove preview</small></p></body></html>
"""

TITLES = {
    400: "Bad preview address",
    401: "Preview needs a token",
    404: "No such preview",
    409: "Sandbox not running",
    502: "Nothing listening",
    503: "Sandbox agent unavailable",
}


def error_page(err: CoveError) -> HTMLResponse:
    body = TEMPLATE.format(
        status=err.status,
        title=TITLES.get(err.status, "Preview error"),
        message=html.escape(err.message),
    )
    # The code lets a program tell the causes apart without reading the page.
    return HTMLResponse(body, status_code=err.status, headers={"x-cove-error": err.code})
