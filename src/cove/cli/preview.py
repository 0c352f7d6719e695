"""`cove preview SANDBOX PORT [--open] [--signed SECONDS]`: a port's preview URL."""

from __future__ import annotations

import argparse
import json
import webbrowser

from cove.cli.terminal import progress
from cove.sdk import Cove


def browser_url(url: str, token: str | None) -> str:
    """What a browser opens: the token in the query once (the server then sets a cookie)."""
    return f"{url}/?token={token}" if token else url + "/"


def preview_command(args: argparse.Namespace) -> int:
    with progress("starting Cove", enabled=not args.json):
        client = Cove(api_url=args.api_url, api_key=args.api_key, keep=True)
    with client as c:
        sb = c.get(args.sandbox)
        token: str | None
        if args.signed is not None:
            signed = sb.create_signed_preview_url(args.port, args.signed)
            url, token, shown = signed.url, None, {"url": signed.url, "token": signed.token}
            shown["expiresAt"] = signed.expires_at or ""
        else:
            link = sb.get_preview_link(args.port)
            url, token = link.url, (None if sb.public else link.token)
            shown = {"url": link.url, "token": link.token}
        if args.json:
            print(json.dumps({"sandboxId": sb.id, "port": args.port, **shown}, indent=2))
        else:
            print(url)
            if token:
                print(f"token: {token}  (header x-daytona-preview-token)")
                print(f"browser: {browser_url(url, token)}")
        if args.open:
            webbrowser.open(browser_url(url, token))
    return 0
