"""The `cove` command. Only this module calls sys.exit.

It reads the same configuration as the SDK (`COVE_API_URL`, `COVE_API_KEY`,
or `--api-url` / `--api-key`); with no URL it runs embedded, like `Cove()`,
and keeps the sandboxes it creates (the next embedded run finds them again).
`exec`, `run` and `shell` exit with the command's own exit code; a failure of
Cove itself then exits with 125 (as `docker run` does), elsewhere with 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cove.wire.errors import CoveError

CLI_FAILURE = 125  # the command's own failure, for exec/run/shell (like `docker run`)


def _command(name: str, module: str = "commands") -> Callable[[argparse.Namespace], int]:
    """A client command, imported when it runs (`cove serve` needs no SDK)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        commands = importlib.import_module(f"cove.cli.{module}")
        func: Callable[[argparse.Namespace], int] = getattr(commands, f"{name}_command")
        return func(args)

    return run


# -- serve (unchanged) --------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cove.runtime.local import bwrap_path
    from cove.server import logredact
    from cove.server.app import KEEP_ALIVE_SECONDS, build_app, build_server
    from cove.settings import Settings

    keys = [k.strip() for k in args.api_key.split(",") if k.strip()] if args.api_key else None
    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        api_keys=keys,
        backend=args.backend,
        preview_domain=args.preview_domain,
        ssh_port=args.ssh_port,
        ray_address=args.ray_address,
    )
    if bwrap_path() is None:
        print("cove: bubblewrap is not installed; run: apt-get install bubblewrap", file=sys.stderr)
        return 1
    if settings.debug_tracemalloc:
        from cove.server import memdebug

        memdebug.install(Path(settings.debug_tracemalloc))
    server = build_server(settings)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Cove server on {url}  (data: {settings.data_dir})", flush=True)
    print(f"  DAYTONA_API_URL / COVE_API_URL = {url}/api", flush=True)
    if settings.ssh_port:
        print(f"  SSH on {settings.host}:{settings.ssh_port} (user name: an SSH access token)")
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
        ws=server.uvicorn_ws(),
        ws_ping_interval=None,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    logredact.install()  # after uvicorn.Config: it configures logging
    uvicorn.Server(config).run()
    return 0


# -- parser -----------------------------------------------------------------------


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", default=None, help="server API URL (env COVE_API_URL; "
                        "none: run embedded)")  # fmt: skip
    common.add_argument("--api-key", default=None, help="API key (env COVE_API_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def _command_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cwd", default=None, help="working directory (relative: under the home)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--timeout", type=float, default=None, help="seconds; the command is killed")


def _network_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network", action="append", default=[], metavar="POLICY",
        help="egress policy, repeatable: block | open | allow=CIDR,... | domains=NAME,... "
        "(*.x.y wildcards) | deny=CIDR,... | proxy=URL",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cove", description="Sandboxes for untrusted code.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = _client_options()

    serve = sub.add_parser("serve", help="run the control-plane server in the foreground")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 3000)")
    serve.add_argument("--data-dir", default=None, help="SQLite, keys and workspaces")
    serve.add_argument(
        "--api-key", default=os.environ.get("COVE_API_KEY"), help="accepted key(s), comma-separated"
    )
    serve.add_argument("--backend", default=None, help="runtime backend (auto, local, ray)")
    serve.add_argument(
        "--ray-address", default=None, help="the Ray cluster's host:port (env COVE_RAY_ADDRESS)"
    )
    serve.add_argument(
        "--preview-domain", default=None, metavar="DOMAIN",
        help="wildcard domain of host-form preview URLs, {port}-{sandboxId}.DOMAIN "
        "(env COVE_PREVIEW_DOMAIN; default: path-form URLs only)",
    )  # fmt: skip
    serve.add_argument(
        "--ssh-port", type=int, default=None, help="SSH port (env COVE_SSH_PORT; 0: no SSH)"
    )
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    create = sub.add_parser("create", parents=[common], help="create and start a sandbox")
    create.add_argument("--language", default=None, help="python (default), javascript, ...")
    create.add_argument("--name", default=None)
    create.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    create.add_argument("--cpu", type=int, default=None)
    create.add_argument("--memory", type=int, default=None, help="GiB")
    create.add_argument("--disk", type=int, default=None, help="GiB")
    _network_option(create)
    create.add_argument("--image", default=None, help="a built image's tag or a snapshot")
    create.add_argument("--ephemeral", action="store_true",
                        help="delete the sandbox as soon as it stops")  # fmt: skip
    create.add_argument("--link", default=None, metavar="OWNER",
                        help="follow OWNER (id or name): a private network with it, deleted "
                        "with it; needs --ephemeral")  # fmt: skip
    create.set_defaults(func=_command("create"))

    network = sub.add_parser(
        "network", parents=[common], help="show or change a sandbox's egress policy",
        description="Without --network, print SANDBOX's effective egress policy; with it, "
        "change the policy of the running sandbox (in force from its next connection).",
    )  # fmt: skip
    network.add_argument("sandbox", metavar="SANDBOX")
    _network_option(network)
    network.set_defaults(func=_command("network"))

    build = sub.add_parser(
        "build", parents=[common], help="build an image from a Dockerfile, with live output",
        description="Build the Dockerfile with CONTEXT (sent to the server); -t names it for "
        "`cove create --image NAME`.",
    )  # fmt: skip
    build.add_argument("-f", "--file", default="Dockerfile", help="the Dockerfile")
    build.add_argument("-t", "--tag", default=None, help="name the image")
    build.add_argument("context", nargs="?", default=".", metavar="CONTEXT")
    build.set_defaults(func=_command("build", "images"))

    images = sub.add_parser("images", parents=[common], help="list images, or prune them")
    images.add_argument("action", nargs="?", choices=["list", "prune"], default="list")
    images.add_argument("--all", action="store_true", help="prune: every image not in use")
    images.set_defaults(func=_command("images", "images"))

    listing = sub.add_parser("list", parents=[common], help="list your sandboxes")
    listing.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                         help="only sandboxes with this label (repeatable)")  # fmt: skip
    listing.set_defaults(func=_command("list"))

    nodes = sub.add_parser(
        "nodes", parents=[common], help="list the hosts that run sandboxes (capacity, used, free)"
    )
    nodes.set_defaults(func=_command("nodes"))

    delete = sub.add_parser("delete", parents=[common], help="delete sandboxes")
    delete.add_argument("sandboxes", nargs="+", metavar="SANDBOX", help="id or name")
    delete.set_defaults(func=_command("delete"))

    ex = sub.add_parser(
        "exec", parents=[common], help="run a command, streaming its output",
        description="Run COMMAND in SANDBOX, stream its output, exit with its exit code. "
        "One argument is a shell line; several are run as argv.",
    )  # fmt: skip
    ex.add_argument("sandbox", metavar="SANDBOX")
    _command_options(ex)
    ex.add_argument("-i", "--interactive", action="store_true", help="send our stdin to it")
    ex.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    ex.set_defaults(func=_command("exec"), passthrough=True)

    run = sub.add_parser(
        "run", parents=[common], help="run a file in a fresh sandbox (stateless)",
        description="Run FILE (language from its extension) in a temporary sandbox, "
        "or in --sandbox; exit with its exit code.",
    )  # fmt: skip
    run.add_argument("file", metavar="FILE")
    run.add_argument("args", nargs="*", metavar="ARG", help="arguments for the program")
    run.add_argument("--sandbox", default=None, help="run in this sandbox instead")
    run.add_argument("--language", default=None, help="override the extension's language")
    run.add_argument("--timeout", type=float, default=None)
    run.set_defaults(func=_command("run"), passthrough=True)

    logs = sub.add_parser("logs", parents=[common], help="a session command's output")
    logs.add_argument("sandbox", metavar="SANDBOX")
    logs.add_argument("session", metavar="SESSION")
    logs.add_argument("command_id", metavar="CMD")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until it exits")
    logs.add_argument("--offset", type=int, default=0, help="with --follow: skip N bytes")
    logs.set_defaults(func=_command("logs"))

    cp = sub.add_parser(
        "cp", parents=[common], help="copy files in or out of a sandbox",
        description="Copy SRC to DST; one side is SANDBOX:PATH. Directories are copied "
        "whole: into DST if it is an existing directory, else as DST (like `docker cp`).",
    )  # fmt: skip
    cp.add_argument("src", metavar="SRC")
    cp.add_argument("dst", metavar="DST")
    cp.set_defaults(func=_command("cp", "files"))

    ls = sub.add_parser("ls", parents=[common], help="list a directory in a sandbox")
    ls.add_argument("sandbox", metavar="SANDBOX")
    ls.add_argument("path", nargs="?", default=".", metavar="PATH", help="default: the home")
    ls.set_defaults(func=_command("ls", "files"))

    git = sub.add_parser("git", help="git inside a sandbox").add_subparsers(
        dest="git_command", required=True
    )
    clone = git.add_parser(
        "clone", parents=[common], help="clone a repository inside a sandbox",
        description="Clone URL into PATH (relative: under the working directory) inside "
        "SANDBOX. A password or token is read from the environment variable "
        "COVE_GIT_PASSWORD, never from the command line.",
    )  # fmt: skip
    clone.add_argument("sandbox", metavar="SANDBOX")
    clone.add_argument("url", metavar="URL")
    clone.add_argument("path", nargs="?", default=None, metavar="PATH",
                       help="default: the URL's last segment, as git names it")  # fmt: skip
    clone.add_argument("-b", "--branch", default=None)
    clone.add_argument("--commit", default=None, help="check out this commit (detached)")
    clone.add_argument("--depth", type=int, default=None, help="a shallow clone of N commits")
    clone.add_argument("--username", default=None, help="for an HTTP(S) remote")
    clone.set_defaults(func=_command("git_clone", "git"))

    shell = sub.add_parser("shell", parents=[common], help="an interactive shell (PTY)")
    shell.add_argument("sandbox", metavar="SANDBOX")
    shell.add_argument("--cwd", default=None)
    shell.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    shell.set_defaults(func=_command("shell"), passthrough=True)
    _control_parsers(sub, common)

    preview = sub.add_parser(
        "preview", parents=[common], help="the URL of a port inside a sandbox",
        description="Print the preview URL of PORT in SANDBOX and its token (send it as "
        "x-daytona-preview-token; a browser opens URL/?token=TOKEN once). With an "
        "embedded server (no --api-url) the URL works only while this command runs.",
    )  # fmt: skip
    preview.add_argument("sandbox", metavar="SANDBOX")
    preview.add_argument("port", type=int, metavar="PORT")
    preview.add_argument("--open", action="store_true", help="open it in the web browser")
    preview.add_argument(
        "--signed", type=int, default=None, metavar="SECONDS",
        help="a self-contained URL (no token needed) that expires after SECONDS",
    )  # fmt: skip
    preview.set_defaults(func=_command("preview", "preview"))
    ssh = sub.add_parser(
        "ssh", parents=[common], help="ssh into a sandbox (the server runs with --ssh-port)",
        description="Run the system's ssh with a fresh SSH access token for SANDBOX; "
        "with COMMAND, run it there without a terminal and exit with its exit code.",
    )  # fmt: skip
    ssh.add_argument("sandbox", metavar="SANDBOX")
    ssh.add_argument("--expires", type=int, default=None, help="token lifetime in minutes (60)")
    ssh.add_argument("-o", dest="ssh_option", action="append", default=[], metavar="OPTION",
                     help="an ssh -o option, e.g. StrictHostKeyChecking=accept-new")  # fmt: skip
    ssh.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    ssh.set_defaults(func=_command("ssh", "ssh"))
    return parser


def _control_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Sandbox control (cli/control.py): the SDK's calls of the same names."""
    labels = sub.add_parser("labels", parents=[common], help="show or replace a sandbox's labels")
    labels.add_argument("sandbox", metavar="SANDBOX")
    labels.add_argument("labels", nargs="*", metavar="KEY=VALUE", help="replace with these")
    labels.set_defaults(func=_command("labels", "control"))

    life = sub.add_parser(
        "lifecycle", parents=[common], help="set auto-stop/delete/archive/pause minutes, TTL",
        description="Minutes; 0 disables (auto-delete: -1 disables, 0 deletes on stop).",
    )  # fmt: skip
    life.add_argument("sandbox", metavar="SANDBOX")
    for flag in ("--autostop", "--auto-delete", "--auto-archive", "--auto-pause", "--ttl"):
        life.add_argument(flag, type=int, default=None, metavar="MINUTES")
    life.set_defaults(func=_command("lifecycle", "control"))

    refresh = sub.add_parser(
        "refresh-activity", parents=[common], help="count as activity (postpones auto-stop)"
    )
    refresh.add_argument("sandbox", metavar="SANDBOX")
    refresh.set_defaults(func=_command("refresh_activity", "control"))

    resize = sub.add_parser(
        "resize", parents=[common], help="change CPU/memory (in place) or disk (stopped)"
    )
    resize.add_argument("sandbox", metavar="SANDBOX")
    resize.add_argument("--cpu", type=int, default=None)
    resize.add_argument("--memory", type=int, default=None, help="GiB")
    resize.add_argument("--disk", type=int, default=None, help="GiB, grow only")
    resize.set_defaults(func=_command("resize", "control"))

    metrics = sub.add_parser("metrics", parents=[common], help="CPU, memory and disk use")
    metrics.add_argument("sandbox", metavar="SANDBOX")
    metrics.add_argument(
        "--since", type=float, default=None, metavar="SECONDS", help="the history, not just now"
    )
    metrics.set_defaults(func=_command("metrics", "control"))

    mcp = sub.add_parser(
        "mcp", parents=[common], help="serve MCP on stdin/stdout (for agents' MCP clients)"
    )
    mcp.set_defaults(func=_command("mcp", "mcp"))


def main(argv: list[str] | None = None) -> None:
    # Warnings and failures of background work (stdin forwarding, cleanup) go to
    # stderr, one "cove: ..." line each (with the traceback for unexpected ones).
    logging.basicConfig(level=logging.WARNING, format="cove: %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    failure = CLI_FAILURE if getattr(args, "passthrough", False) else 1
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        code = 130
    except ValueError as exc:
        print(f"cove: {exc}", file=sys.stderr)
        code = 2
    except OSError as exc:  # e.g. `cove run` of a missing file
        print(f"cove: {exc}", file=sys.stderr)
        code = failure
    except CoveError as exc:
        print(f"cove: {exc}", file=sys.stderr)
        code = failure
    sys.exit(code)
