"""The `cove` command. Only this module calls sys.exit.

It reads the same configuration as the SDK (`COVE_API_URL`, `COVE_API_KEY`,
or `--api-url` / `--api-key`); with no URL it runs embedded, like `Cove()`,
and keeps the sandboxes it creates (the next embedded run finds them again).
`exec`, `run` and `shell` exit with the command's own exit code; a failure of
Cove itself then exits with 125 (as `docker run` does), elsewhere with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.sdk import Cove, ExecuteResponse, Sandbox

CLI_FAILURE = 125
EXTENSIONS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
              ".ts": "typescript", ".sh": "bash"}  # fmt: skip


# -- serve (unchanged) --------------------------------------------------------------


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


# -- client commands ------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Cove:
    from cove.sdk import Cove
    from cove.sdk.terminal import progress

    with progress("starting Cove", enabled=not args.json):
        return Cove(api_url=args.api_url, api_key=args.api_key, keep=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _sandbox_json(sb: Sandbox) -> dict[str, Any]:
    return {
        "id": sb.id, "name": sb.name, "state": sb.state, "language": sb.language,
        "cpu": sb.cpu, "memory": sb.memory, "disk": sb.disk, "errorReason": sb.error_reason,
    }  # fmt: skip


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env takes NAME=VALUE, got {pair!r}")
        env[key] = value
    return env


def _write(stream: Any) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def _create(args: argparse.Namespace) -> int:
    from cove.sdk.terminal import progress

    with _client(args) as c, progress("creating sandbox", enabled=not args.json):
        sb = c.create(
            language=args.language, env_vars=_env(args.env), name=args.name,
            cpu=args.cpu, memory=args.memory, disk=args.disk,
        )  # fmt: skip
    if args.json:
        _print_json(_sandbox_json(sb))
    else:
        print(sb.id)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _client(args) as c:
        sandboxes = c.list()
    if args.json:
        _print_json([_sandbox_json(sb) for sb in sandboxes])
        return 0
    rows = [("ID", "NAME", "STATE", "LANGUAGE", "CPU", "MEM", "DISK")]
    rows += [
        (sb.id, sb.name, sb.state, sb.language, str(sb.cpu), f"{sb.memory}G", f"{sb.disk}G")
        for sb in sandboxes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _delete(args: argparse.Namespace) -> int:
    from cove.sdk.terminal import progress

    with _client(args) as c, progress("deleting", enabled=not args.json):
        for ref in args.sandboxes:
            c.delete(c.get(ref))
    if args.json:
        _print_json({"deleted": args.sandboxes})
    return 0


def _response_json(r: ExecuteResponse) -> dict[str, Any]:
    return {
        "exitCode": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "result": r.result,
        "timedOut": r.timed_out, "truncated": r.truncated,
    }  # fmt: skip


def _command_text(argv: list[str]) -> str:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ValueError("no command given: cove exec SANDBOX -- COMMAND [ARGS...]")
    # One argument is a shell line (pipes, globs); several are quoted as argv.
    return argv[0] if len(argv) == 1 else shlex.join(argv)


def _exec(args: argparse.Namespace) -> int:
    from cove.sdk import CommandTimeout

    command = _command_text(args.command)
    with _client(args) as c:
        sb = c.get(args.sandbox)
        if not args.json:
            return _exec_streaming(sb, command, args)
        try:
            r = sb.process.exec(command, cwd=args.cwd, env=_env(args.env), timeout=args.timeout)
        except CommandTimeout as err:
            r = err.response
        _print_json(_response_json(r))
        return r.exit_code


def _forward_stdin(sb: Sandbox, session: str, cmd: str) -> None:
    """Copy our stdin to the command's, then close it (EOF), in the background."""

    def pump() -> None:
        with contextlib.suppress(Exception):
            while data := os.read(0, 65536):
                sb.process.send_session_command_input(session, cmd, data.decode(errors="replace"))
            sb.process.close_session_command_input(session, cmd)

    threading.Thread(target=pump, daemon=True).start()


def _exec_streaming(sb: Sandbox, command: str, args: argparse.Namespace) -> int:
    """Run the command in a throwaway session and stream its log as it is written."""
    from cove.sdk import SessionExecuteRequest

    session = f"cove-exec-{uuid.uuid4().hex[:12]}"
    p = sb.process
    p.create_session(session)
    try:
        req = SessionExecuteRequest(
            command, run_async=True, cwd=args.cwd, env=_env(args.env), timeout=args.timeout,
            suppress_input_echo=args.interactive,  # our stdin is not the command's output
        )  # fmt: skip
        cmd = p.execute_session_command(session, req)
        if args.interactive:
            _forward_stdin(sb, session, cmd.cmd_id)
        try:
            p.follow_session_command_logs(
                session, cmd.cmd_id, _write(sys.stdout), _write(sys.stderr)
            )
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                p.kill_session_command(session, cmd.cmd_id)
            return 130
        done = p.get_session_command(session, cmd.cmd_id)
        if done.timed_out:
            print(f"cove: command timed out after {args.timeout:g}s", file=sys.stderr)
        return done.exit_code if done.exit_code is not None else CLI_FAILURE
    finally:
        with contextlib.suppress(Exception):
            p.delete_session(session)


def _run(args: argparse.Namespace) -> int:
    from cove.sdk import CodeRunParams, CommandTimeout
    from cove.sdk.terminal import progress

    path = Path(args.file)
    language = args.language or EXTENSIONS.get(path.suffix.lower())
    if language is None:
        raise ValueError(
            f"cannot tell the language of {path.name}: use --language "
            f"({', '.join(sorted(set(EXTENSIONS.values())))})"
        )
    code = path.read_text()
    with _client(args) as c:
        temporary = args.sandbox is None
        with progress("creating sandbox", enabled=not args.json and temporary):
            sb = c.get(args.sandbox) if args.sandbox else c.create(language=language)
        try:
            params = CodeRunParams(argv=list(args.args))
            r = sb.process.code_run(code, params, timeout=args.timeout, language=language)
        except CommandTimeout as err:
            r = err.response
        finally:
            if temporary:
                with contextlib.suppress(Exception):
                    c.delete(sb)
    if args.json:
        _print_json(_response_json(r))
    else:
        _write(sys.stdout)(r.stdout)
        _write(sys.stderr)(r.stderr)
        if r.timed_out:
            print(f"cove: timed out after {args.timeout:g}s", file=sys.stderr)
    return r.exit_code


def _logs(args: argparse.Namespace) -> int:
    with _client(args) as c:
        p = c.get(args.sandbox).process
        if args.follow and not args.json:
            p.follow_session_command_logs(
                args.session, args.command_id, _write(sys.stdout), _write(sys.stderr),
                offset=args.offset,
            )  # fmt: skip
            return 0
        logs = p.get_session_command_logs(args.session, args.command_id)
    if args.json:
        _print_json({"output": logs.output, "stdout": logs.stdout, "stderr": logs.stderr})
    else:
        _write(sys.stdout)(logs.stdout)
        _write(sys.stderr)(logs.stderr)
    return 0


def _shell(args: argparse.Namespace) -> int:
    from cove.sdk.pty import PtySession
    from cove.sdk.terminal import relay, terminal_size

    with _client(args) as c:
        sb = c.get(args.sandbox)
        cols, rows = terminal_size()
        pty = PtySession(sb, cols, rows, cwd=args.cwd, envs=_env(args.env) or None)
        return relay(pty, sys.stdin.fileno(), sys.stdout.fileno())


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
    serve.add_argument("--backend", default=None, help="runtime backend (auto, local)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    create = sub.add_parser("create", parents=[common], help="create and start a sandbox")
    create.add_argument("--language", default=None, help="python (default), javascript, ...")
    create.add_argument("--name", default=None)
    create.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    create.add_argument("--cpu", type=int, default=None)
    create.add_argument("--memory", type=int, default=None, help="GiB")
    create.add_argument("--disk", type=int, default=None, help="GiB")
    create.set_defaults(func=_create)

    sub.add_parser("list", parents=[common], help="list your sandboxes").set_defaults(func=_list)

    delete = sub.add_parser("delete", parents=[common], help="delete sandboxes")
    delete.add_argument("sandboxes", nargs="+", metavar="SANDBOX", help="id or name")
    delete.set_defaults(func=_delete)

    ex = sub.add_parser(
        "exec", parents=[common], help="run a command, streaming its output",
        description="Run COMMAND in SANDBOX, stream its output, exit with its exit code. "
        "One argument is a shell line; several are run as argv.",
    )  # fmt: skip
    ex.add_argument("sandbox", metavar="SANDBOX")
    _command_options(ex)
    ex.add_argument("-i", "--interactive", action="store_true", help="send our stdin to it")
    ex.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    ex.set_defaults(func=_exec, passthrough=True)

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
    run.set_defaults(func=_run, passthrough=True)

    logs = sub.add_parser("logs", parents=[common], help="a session command's output")
    logs.add_argument("sandbox", metavar="SANDBOX")
    logs.add_argument("session", metavar="SESSION")
    logs.add_argument("command_id", metavar="CMD")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until it exits")
    logs.add_argument("--offset", type=int, default=0, help="with --follow: skip N bytes")
    logs.set_defaults(func=_logs)

    shell = sub.add_parser("shell", parents=[common], help="an interactive shell (PTY)")
    shell.add_argument("sandbox", metavar="SANDBOX")
    shell.add_argument("--cwd", default=None)
    shell.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    shell.set_defaults(func=_shell, passthrough=True)
    return parser


def main(argv: list[str] | None = None) -> None:
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
    except Exception as exc:
        from cove.errors import CoveError

        if not isinstance(exc, CoveError):
            raise
        print(f"cove: {exc}", file=sys.stderr)
        code = failure
    sys.exit(code)
