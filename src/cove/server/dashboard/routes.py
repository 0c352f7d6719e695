"""The dashboard's own routes: the page, sign-in and sign-out, and its static files.

Everything else the page does goes through the JSON API with the session
cookie (see `sessions`). Every response here carries a Content-Security-Policy
that allows scripts from this server only: no inline script, no CDN, so the
page works offline and sandbox output can never run as script.
"""

from __future__ import annotations

import hmac
from html import escape
from importlib.resources import files
from pathlib import PurePosixPath
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cove.server.api import read_body
from cove.server.dashboard.sessions import COOKIE, SessionBook, cookie_value, same_origin
from cove.wire.errors import AccessDenied, AuthError, BadRequest, NotFound

STATIC_PREFIX = "/dash/static/"
# xterm.js sets styles on its elements and adds a <style> for its measurements:
# styles may be inline, scripts may not.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": with it chromium sends `Origin: null` on the sign-in form's
    # POST, which the Origin check must refuse. Same-origin: nothing leaks to previews.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    # A page opened by a preview (same origin in the path form) gets no handle on us.
    "Cross-Origin-Opener-Policy": "same-origin",
}
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
         ".txt": "text/plain", ".png": "image/png"}  # fmt: skip
MAX_SIGN_IN_BYTES = 4096

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cove</title>
<link rel="stylesheet" href="/dash/static/app.css">
{head}</head>
<body>
<header><a class="brand" href="/">Cove</a>{nav}</header>
<main id="app">{main}</main>
</body></html>
"""

SIGN_IN = """<form class="signin" method="post" action="/dash/login">
<h1>Sign in</h1>
<p>Paste an API key. It is checked once and never kept in the browser:
the page gets a session cookie instead.</p>
{error}<label>API key
<input type="password" name="key" id="key" autocomplete="off" required autofocus></label>
<button type="submit">Sign in</button>
</form>"""

SIGNED_IN_HEAD = """<meta name="csrf-token" content="{csrf}">
<link rel="stylesheet" href="/dash/static/vendor/xterm.css">
<script type="module" src="/dash/static/app.js"></script>
"""

SIGN_OUT = """<form class="signout" method="post" action="/dash/logout">
<input type="hidden" name="csrf" value="{csrf}"><button id="signout" type="submit">Sign out</button>
</form>"""


def page(head: str, nav: str, main: str, status: int = 200) -> Response:
    body = PAGE.format(head=head, nav=nav, main=main)
    return Response(body, status, headers=SECURITY_HEADERS, media_type="text/html")


class DashboardRoutes:
    def __init__(self, sessions: SessionBook) -> None:
        self.sessions = sessions
        self.static = files("cove.server.dashboard") / "static"

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/dash/login", self.sign_in, methods=["POST"]),
            Route("/dash/logout", self.sign_out, methods=["POST"]),
            Route("/favicon.ico", self.no_icon, methods=["GET"]),
            Route(STATIC_PREFIX + "{path:path}", self.static_file, methods=["GET"]),
        ]

    @staticmethod
    def open_paths() -> tuple[str, ...]:
        """Paths the API-key middleware lets through: these check the session themselves."""
        return ("/", "/dash/login", "/dash/logout", "/favicon.ico")

    async def index(self, request: Request) -> Response:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return page("", "", SIGN_IN.format(error=""))
        if not _navigation(request):
            # The page carries the CSRF token: a preview's script on this origin (the
            # path form) could fetch it. Browsers mark every fetch, so only a
            # navigation to the page gets it (framing is refused by the CSP).
            raise AccessDenied("the dashboard page is served to browser navigations only")
        csrf = escape(session.csrf)
        return page(SIGNED_IN_HEAD.format(csrf=csrf), SIGN_OUT.format(csrf=csrf), "")

    async def sign_in(self, request: Request) -> Response:
        # A form post from another site could sign a victim into the attacker's
        # key ("login CSRF"): browsers send Origin on every POST, so it must be ours.
        if not same_origin(request.headers.get("origin", ""), request.headers.get("host", "")):
            raise AccessDenied("sign-in must come from the dashboard's own page")
        form = _form(await read_body(request, MAX_SIGN_IN_BYTES))
        key = form.get("key", "")
        if not key.strip():
            raise BadRequest("field 'key' is required: the API key to sign in with")
        try:
            sid, _ = self.sessions.sign_in(key)
        except AuthError:
            error = '<p class="error" role="alert">That API key is not valid.</p>'
            return page("", "", SIGN_IN.format(error=error), 401)
        response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
        response.set_cookie(
            COOKIE, sid, max_age=int(self.sessions.lifetime), path="/",
            httponly=True, samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def sign_out(self, request: Request) -> Response:
        sid = cookie_value(request.headers.get("cookie", ""), COOKIE)
        session = self.sessions.get(sid)
        if session is not None and sid is not None:
            form = _form(await read_body(request, MAX_SIGN_IN_BYTES))
            if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
                raise AccessDenied("missing or wrong CSRF token (form field 'csrf')")
            self.sessions.sign_out(sid)
        response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def no_icon(self, _: Request) -> Response:
        return Response(status_code=204, headers=SECURITY_HEADERS)  # browsers ask on every page

    async def static_file(self, request: Request) -> Response:
        rel = PurePosixPath(request.path_params["path"])
        if rel.is_absolute() or ".." in rel.parts or rel.suffix not in TYPES:
            raise NotFound(f"no such dashboard file: {rel}")
        resource = self.static.joinpath(*rel.parts)
        if not resource.is_file():
            raise NotFound(f"no such dashboard file: {rel}")
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        return Response(resource.read_bytes(), headers=headers, media_type=TYPES[rel.suffix])


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode(), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("expected a URL-encoded form") from None
    return {k: v[0] for k, v in fields.items()}


def _navigation(request: Request) -> bool:
    """A top-level page load, or a client that sends no fetch metadata (curl, old browsers)."""
    mode = request.headers.get("sec-fetch-mode")
    dest = request.headers.get("sec-fetch-dest")
    return (mode is None or mode == "navigate") and (dest is None or dest == "document")
