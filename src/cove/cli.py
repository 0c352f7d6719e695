"""The `cove` command. Only this module calls sys.exit."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cove.runtime.local import bwrap_path
    from cove.server.app import build_app, build_server
    from cove.settings import Settings

    keys = [k.strip() for k in args.api_key.split(",") if k.strip()] if args.api_key else None
    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        api_keys=keys,
        backend=args.backend,
    )
    if bwrap_path() is None:
        print("cove: bubblewrap is not installed; run: apt-get install bubblewrap", file=sys.stderr)
        return 1
    server = build_server(settings)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Cove server on {url}  (data: {settings.data_dir})", flush=True)
    print(f"  DAYTONA_API_URL / COVE_API_URL = {url}/api", flush=True)
    if not settings.api_keys:
        where = "generated" if server.generated_key else "from"
        print(
            f"  API key ({where} {settings.data_dir / 'api-key'}): {server.api_keys[0]}", flush=True
        )
    config = uvicorn.Config(
        build_app(server),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws="websockets-sansio" if _has_sansio() else "websockets",
        ws_ping_interval=None,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
    return 0


def _has_sansio() -> bool:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cove", description="Sandboxes for untrusted code.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the control-plane server in the foreground")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 3000)")
    serve.add_argument("--data-dir", default=None, help="SQLite, keys and workspaces")
    serve.add_argument(
        "--api-key", default=os.environ.get("COVE_API_KEY"), help="accepted key(s), comma-separated"
    )
    serve.add_argument("--backend", default=None, help="runtime backend (auto, local)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        code = 130
    except ValueError as exc:
        print(f"cove: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
