"""The client commands of the `cove` CLI (`cove.cli` parses and exits).

Each takes the parsed arguments and returns the exit code. They use the SDK
like any script: `Cove(keep=True)`, so a CLI run never deletes what it made,
and in embedded mode the next run finds the sandboxes again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cove.cli.terminal import progress
from cove.sdk import (
    CodeRunParams,
    CommandTimeout,
    Cove,
    CoveError,
    ExecuteResponse,
    Gone,
    Sandbox,
    SessionExecuteRequest,
)

log = logging.getLogger(__name__)

CLI_FAILURE = 125
EXTENSIONS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
              ".ts": "typescript", ".sh": "bash"}  # fmt: skip


def _client(args: argparse.Namespace) -> Cove:

    with progress("starting Cove", enabled=not args.json):
        return Cove(api_url=args.api_url, api_key=args.api_key, keep=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _sandbox_json(sb: Sandbox) -> dict[str, Any]:
    return {
        "id": sb.id, "name": sb.name, "state": sb.state, "language": sb.language,
        "cpu": sb.cpu, "memory": sb.memory, "disk": sb.disk, "errorReason": sb.error_reason,
        "autoDeleteInterval": sb.auto_delete_interval, "linkedSandboxId": sb.linked_sandbox_id,
    }  # fmt: skip


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--env takes NAME=VALUE, got {pair!r}")
        env[key] = value
    return env


_NETWORK_KEYS = {
    "allow": "network_allow_list", "domains": "domain_allow_list",
    "deny": "network_deny_list", "proxy": "outbound_proxy_url",
}  # fmt: skip


def _network(specs: list[str]) -> dict[str, Any]:
    """`--network` values as the SDK's keyword arguments (the server checks each entry)."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep and key in ("block", "open"):
            out["network_block_all"] = key == "block"
        elif sep and key in _NETWORK_KEYS:
            out[_NETWORK_KEYS[key]] = value
        else:
            raise ValueError(
                f"--network takes block, open, allow=CIDRS, domains=NAMES, deny=CIDRS or "
                f"proxy=URL, got {spec!r}"
            )
    return out


def _write(stream: Any) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def create_command(args: argparse.Namespace) -> int:

    with _client(args) as c, progress("creating sandbox", enabled=not args.json):
        sb = c.create(
            language=args.language, env_vars=_env(args.env), name=args.name,
            cpu=args.cpu, memory=args.memory, disk=args.disk, snapshot=args.image,
            **_network(args.network),
            ephemeral=args.ephemeral or None, linked_sandbox=args.link,
        )  # fmt: skip
    if args.json:
        _print_json(_sandbox_json(sb))
    else:
        print(sb.id)
    return 0


def network_command(args: argparse.Namespace) -> int:
    change = _network(args.network)
    if "outbound_proxy_url" in change:
        raise ValueError("--network proxy=URL is set at create only")
    with _client(args) as c:
        sb = c.get(args.sandbox)
        if change:
            sb.update_network_settings(**change)
        policy = sb.get_network_settings()
    if args.json:
        _print_json(policy.to_wire())
        return 0
    if not policy.egress:
        print(policy.note)
    elif policy.network_block_all:
        print("egress: blocked (loopback only)")
    elif policy.restricted:
        print("egress: only listed destinations")
    else:
        print("egress: open")
    for label, values in (
        ("allow", policy.network_allow_list), ("domains", policy.domain_allow_list),
        ("deny", policy.network_deny_list),
    ):  # fmt: skip
        if values:
            print(f"{label}: {', '.join(values)}")
    if policy.outbound_proxy_url:
        print(f"proxy: {policy.outbound_proxy_url}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    from cove.cli.control import parse_labels

    with _client(args) as c:
        sandboxes = c.list(labels=parse_labels(args.label) or None)
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


def nodes_command(args: argparse.Namespace) -> int:
    with _client(args) as c:
        nodes = c.nodes()
    if args.json:
        _print_json([n.to_wire() for n in nodes])
        return 0

    def amounts(a: dict[str, float]) -> tuple[str, str, str]:
        slots = f"{a['sandboxes']:g}" if "sandboxes" in a else "-"
        return f"{a.get('cpu', 0):g}", f"{a.get('memory', 0):g}G", slots

    rows: list[list[str]] = [
        ["NODE", "ALIVE", "SANDBOXES", "CPU used/cap", "MEM used/cap", "SLOTS used/cap"]
    ]
    for n in nodes:
        used, cap = amounts(n.used), amounts(n.capacity)
        state = "yes" if n.alive else "LOST"
        rows.append([n.id, state, str(n.sandboxes)])
        rows[-1] += [f"{u}/{c}" for u, c in zip(used, cap, strict=True)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def delete_command(args: argparse.Namespace) -> int:

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


def exec_command(args: argparse.Namespace) -> int:

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


def _forward_stdin(sb: Sandbox, session: str, cmd: str, fd: int = 0) -> threading.Thread:
    """Copy `fd` (our stdin) to the command's stdin, then close it (EOF), in the background.

    The command ending first is expected (`Gone`: nothing is left to read the
    input); any other failure stops the copy and says so on stderr, since the
    command will not get the rest of its input.
    """

    def pump() -> None:
        try:
            while data := os.read(fd, 65536):
                text = data.decode(errors="replace")
                sb.process.send_session_command_input(session, cmd, text, raw=True)
            sb.process.close_session_command_input(session, cmd)
        except Gone:
            return
        except Exception:
            log.exception("forwarding stdin to the command stopped; it gets no more input")

    thread = threading.Thread(target=pump, name="cove-stdin", daemon=True)
    thread.start()
    return thread


def _exec_streaming(sb: Sandbox, command: str, args: argparse.Namespace) -> int:
    """Run the command in a throwaway session and stream its log as it is written."""
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
        else:  # like `docker exec` without -i: a read gets EOF instead of waiting forever
            p.close_session_command_input(session, cmd.cmd_id)
        try:
            p.follow_session_command_logs(
                session, cmd.cmd_id, _write(sys.stdout), _write(sys.stderr)
            )
        except KeyboardInterrupt:
            with contextlib.suppress(Gone):  # it ended on its own meanwhile
                p.kill_session_command(session, cmd.cmd_id)
            return 130
        done = p.get_session_command(session, cmd.cmd_id)
        if done.timed_out:
            print(f"cove: command timed out after {args.timeout:g}s", file=sys.stderr)
        return done.exit_code if done.exit_code is not None else CLI_FAILURE
    finally:
        try:
            p.delete_session(session)
        except CoveError as err:
            log.warning("the session %s was not deleted: %s", session, err)


def run_command(args: argparse.Namespace) -> int:

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
                try:
                    c.delete(sb)
                except CoveError as err:
                    log.warning("the temporary sandbox %s was not deleted: %s", sb.id, err)
    if args.json:
        _print_json(_response_json(r))
    else:
        _write(sys.stdout)(r.stdout)
        _write(sys.stderr)(r.stderr)
        if r.timed_out:
            print(f"cove: timed out after {args.timeout:g}s", file=sys.stderr)
    return r.exit_code


def logs_command(args: argparse.Namespace) -> int:
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


def shell_command(args: argparse.Namespace) -> int:
    from cove.cli.pty import open_shell, relay

    with _client(args) as c:
        pty = open_shell(c.get(args.sandbox), args.cwd, _env(args.env) or None)
        return relay(pty, sys.stdin.fileno(), sys.stdout.fileno())
