"""Which sandbox port a request is for: the path form and the host form of a preview URL.

- path form, always served: `/preview/{ref}/{port}/rest...`
- host form, when a wildcard domain is configured: `{port}-{ref}.{domain}`

`ref` is a sandbox id, or the token of a signed URL (which names its sandbox
itself). The rest of the target is kept exactly as the client encoded it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cove.wire.errors import BadRequest
from cove.wire.numbers import is_number

PATH_PREFIX = "/preview/"
# The server's own paths: never taken for an app's absolute path.
SERVER_PATHS = ("/api", "/toolbox", "/health", "/metrics", "/preview")
# A DNS label: `{port}-{ref}` (sandbox ids are UUIDs, signed tokens lower-case hex).
HOST_LABEL = re.compile(r"^(?P<port>[0-9]+)-(?P<ref>[a-z0-9][a-z0-9-]*)$")


@dataclass
class Address:
    ref: str
    port: int
    prefix: str  # what the app's paths sit under for the client: "/preview/x/port", or ""
    target: str  # what the app is asked for: path and query, as the client sent them
    bare: bool = False  # the path form without the slash after the port


def parse_port(text: str) -> int:
    if not is_number(text) or not 1 <= int(text) <= 65535:
        raise BadRequest(f"port must be a number from 1 to 65535, got {text[:20]!r}")
    return int(text)


def from_path(target: str) -> Address | None:
    """`/preview/{ref}/{port}[/rest][?query]`; None for any other path."""
    if not target.startswith(PATH_PREFIX):
        return None
    path, mark, query = target.partition("?")
    ref, _, after = path[len(PATH_PREFIX) :].partition("/")
    port_text, slash, rest = after.partition("/")
    if not ref or not port_text:
        raise BadRequest("a preview path is /preview/{sandboxId}/{port}/...")
    port = parse_port(port_text)
    return Address(
        ref=ref,
        port=port,
        prefix=f"/preview/{ref}/{port_text}",
        target="/" + rest + mark + query,
        bare=not slash,
    )


def from_host(host: str, target: str, domain: str) -> Address | None:
    """`{port}-{ref}.{domain}[:port]`; None when the host is not under the domain."""
    if not domain:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    suffix = "." + domain.lower().strip(".")
    if not name.endswith(suffix):
        return None
    found = HOST_LABEL.match(name[: -len(suffix)])
    if found is None:
        return None
    return Address(ref=found["ref"], port=parse_port(found["port"]), prefix="", target=target)


def locate(host: str, target: str, domain: str) -> Address | None:
    """The preview a request is for (host form first), or None when it is for the API."""
    return from_host(host, target, domain) or from_path(target)


def referred_prefix(path: str, referer: str | None, host: str) -> str | None:
    """The path-form prefix of the page that asked for `path`, when `path` is an app's
    absolute path (`<script src="/app.js">` on a page under `/preview/{id}/{port}/`).

    Browsers send the page's URL as Referer with same-origin requests (their
    default policy), which is what makes this fallback possible for pages,
    scripts, styles, images and fetches; it cannot work for WebSockets (no
    Referer) nor for paths the server itself serves (`SERVER_PATHS`).
    """
    if not referer or any(path == p or path.startswith(p + "/") for p in SERVER_PATHS):
        return None
    page = urlsplit(referer)
    if page.netloc.lower() != host.lower() or not page.path.startswith(PATH_PREFIX):
        return None
    try:
        addr = from_path(page.path)
    except BadRequest:
        return None
    return addr.prefix if addr is not None else None
