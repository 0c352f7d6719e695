"""`make soak`: every feature at a steady rate for a long time, then what is left behind.

A fresh `cove serve` on loopback is driven through the unmodified official SDK
by one thread per kind of work, each on its own fixed period (a late operation
delays the next one; nothing bursts to catch up): exec and code-run, sessions
whose logs are followed over WebSocket, the interpreter (with contexts made
and deleted), file upload/download/delete, preview links fetched with their
token, `git clone` (with credentials) from a smart-HTTP server on the
sandbox's loopback, image builds from a small Dockerfile (its layer cached
after the first), creates and deletes, and an owner with a linked follower
deleted together. The run is bounded in time (SOAK_MINUTES, default 30) and
in count (each kind at most duration / period operations).

It reports every error by name (target 0); the server's and a busy agent's
memory sampled over the run with their least-squares slope (target: no
upward slope); and, after every sandbox is deleted and the server stopped,
what is left on the host: processes, cgroups, mounts, network namespaces,
interfaces, nftables chains, address claims and files (target: nothing).
Exit status 1 on any error, growth or leftover.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtest.report import machine, write_section
from tests.reliability.helpers import agent_pid
from tests.serverproc import ServerProcess

KEY = "soak-key"
TESTS = Path(__file__).resolve().parents[1] / "tests" / "e2e"
PREVIEW_PORT = 8080
GIT_PORT = 8719
GIT_USER, GIT_PASSWORD = "soak", "soak-pass-not-a-secret"
TOKEN_HEADER = "x-daytona-preview-token"
DOCKERFILE = "FROM python:3.11-slim\nRUN echo soak-layer > /soak.txt\n"
FOLLOW_CMD = "for i in 1 2 3; do echo line$i; sleep 0.2; done"
# Seconds between two operations of a kind (a steady rate, whatever the load).
PERIODS = {
    "exec": 2.0,
    "session_follow": 6.0,
    "interpreter": 4.0,
    "files": 4.0,
    "preview": 3.0,
    "git_clone": 15.0,
    "image_build": 60.0,
    "create_delete": 10.0,
    "linked": 30.0,
}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y): y units per t unit."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


@dataclass
class Soak:
    server: ServerProcess
    seconds: float
    periods: dict[str, float]
    main_id: str = ""
    errors: list[str] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=dict)
    # t, server RSS KiB, agent RSS KiB, live sandboxes, server's open fds
    samples: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    net_indices: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> Any:
        from daytona import Daytona, DaytonaConfig

        return Daytona(DaytonaConfig(api_key=KEY, api_url=self.server.api_url))

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEY}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=120)

    def note(self, sb: Any) -> Any:
        with self.lock:
            self.created.add(sb.id)
        return sb

    # --- the kinds of work: each raises on a wrong answer --------------------

    def op_exec(self, d: Any, sb: Any, n: int) -> None:
        r = sb.process.exec(f"echo exec-{n}")
        if r.exit_code != 0 or r.result != f"exec-{n}\n":
            raise AssertionError(f"exec answered {r.exit_code} {r.result!r}")
        c = sb.process.code_run(f"print({n} * 3)")
        if c.exit_code != 0 or c.result.strip() != str(n * 3):
            raise AssertionError(f"code_run answered {c.exit_code} {c.result!r}")

    def op_session_follow(self, d: Any, sb: Any, n: int) -> None:
        from daytona import SessionExecuteRequest

        sid = f"soak-{n}"
        sb.process.create_session(sid)
        try:
            cmd = sb.process.execute_session_command(
                sid, SessionExecuteRequest(command=FOLLOW_CMD, run_async=True)
            )
            out: list[str] = []
            follow = sb.process.get_session_command_logs_async(
                sid, cmd.cmd_id, out.append, out.append
            )
            asyncio.run(asyncio.wait_for(follow, 60))
            if "".join(out) != "line1\nline2\nline3\n":
                raise AssertionError(f"followed {''.join(out)!r}")
            if sb.process.get_session_command(sid, cmd.cmd_id).exit_code != 0:
                raise AssertionError("the followed command did not exit 0")
        finally:
            sb.process.delete_session(sid)

    def op_interpreter(self, d: Any, sb: Any, n: int) -> None:
        r = sb.code_interpreter.run_code(f"soak_n = {n}\nprint(soak_n * 2)")
        if r.error or r.stdout != f"{n * 2}\n":
            raise AssertionError(f"run_code: {r.error} {r.stdout!r}")
        if n % 5 == 0:  # a context of its own, then gone
            ctx = sb.code_interpreter.create_context()
            try:
                r = sb.code_interpreter.run_code("print('ctx')", context=ctx)
                if r.stdout != "ctx\n":
                    raise AssertionError(f"context run: {r.stdout!r}")
            finally:
                sb.code_interpreter.delete_context(ctx)

    def op_files(self, d: Any, sb: Any, n: int) -> None:
        data = random.randbytes(random.randint(1, 512) * 1024)
        path = f"soak-files/f{n}.bin"
        sb.fs.upload_file(data, path)
        try:
            back = sb.fs.download_file(path)
            if back != data:
                raise AssertionError(f"downloaded {len(back or b'')} bytes of {len(data)}")
        finally:
            sb.fs.delete_file(path)

    def op_preview(self, d: Any, sb: Any, n: int) -> None:
        link = sb.get_preview_link(PREVIEW_PORT)
        with httpx.Client(timeout=60) as c:
            r = c.get(f"{link.url}/hello?n={n}", headers={TOKEN_HEADER: link.token})
        if r.status_code != 200 or not r.text.startswith("hello from the sandbox\n"):
            raise AssertionError(f"preview answered {r.status_code} {r.text[:100]!r}")

    def op_git_clone(self, d: Any, sb: Any, n: int) -> None:
        url = f"http://127.0.0.1:{GIT_PORT}/origin.git"
        path = f"soak-clones/c{n}"
        sb.git.clone(url, path, username=GIT_USER, password=GIT_PASSWORD)
        try:
            text = sb.fs.download_file(f"{path}/README.md")
            if text != b"soak origin\n":
                raise AssertionError(f"cloned README.md is {text!r}")
            if sb.git.branches(path).current != "main":
                raise AssertionError("the clone is not on main")
        finally:
            sb.fs.delete_file(path, recursive=True)

    def op_image_build(self, d: Any, sb: Any, n: int) -> None:
        new = self.note(build_from_dockerfile(d))
        try:
            r = new.process.exec("cat /soak.txt")
            if r.result != "soak-layer\n":
                raise AssertionError(f"image sandbox answered {r.result!r}")
        finally:
            d.delete(new)

    def op_create_delete(self, d: Any, sb: Any, n: int) -> None:
        new = self.note(d.create())
        try:
            r = new.process.exec(f"echo fresh-{n}")
            if r.result != f"fresh-{n}\n":
                raise AssertionError(f"fresh sandbox answered {r.result!r}")
        finally:
            d.delete(new)

    def op_linked(self, d: Any, sb: Any, n: int) -> None:
        from daytona import CreateSandboxFromSnapshotParams

        owner = self.note(d.create())
        try:
            follower = self.note(
                d.create(CreateSandboxFromSnapshotParams(linked_sandbox=owner.id, ephemeral=True))
            )
            r = follower.process.exec("echo follower")
            if r.result != "follower\n":
                raise AssertionError(f"follower answered {r.result!r}")
        finally:
            d.delete(owner)
        with self.http() as c:
            status = c.get(f"/api/sandbox/{follower.id}").status_code
        if status != 404:
            raise AssertionError(f"the follower outlived its owner (GET answered {status})")

    # --- the loops -----------------------------------------------------------

    def worker(self, kind: str, deadline: float) -> None:
        op: Callable[[Any, Any, int], None] = getattr(self, f"op_{kind}")
        period = self.periods[kind]
        limit = max(1, int(self.seconds / period))  # bounded in count as well as time
        d = self.client()
        sb = d.get(self.main_id)
        next_at = time.monotonic() + random.uniform(0, min(period, self.seconds / 2))  # stagger
        for n in range(1, limit + 1):
            wait = next_at - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                return
            if time.monotonic() >= deadline:
                return
            start = time.perf_counter()
            try:
                op(d, sb, n)
            except Exception as exc:  # every failure is counted and named
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                with self.lock:
                    self.errors.append(f"{kind} #{n}: {type(exc).__name__}: {first}"[:300])
            else:
                with self.lock:
                    self.done[kind] += 1
                    self.latency.setdefault(kind, []).append(time.perf_counter() - start)
            next_at = max(next_at + period, time.monotonic())

    def sampler(self, interval: float, started: float, instance: str) -> None:
        assert self.server.proc is not None
        server_pid = self.server.proc.pid
        try:
            agent = agent_pid(self.main_id)
        except LookupError as exc:
            self.errors.append(f"sampler: {exc}")
            return
        while True:
            with contextlib.suppress(OSError):
                self.samples.append(
                    (
                        time.monotonic() - started,
                        rss_kib(server_pid),
                        rss_kib(agent),
                        live_sandboxes(instance),
                        len(os.listdir(f"/proc/{server_pid}/fd")),
                    )
                )
            self.net_indices |= set(net_claims(instance))
            if self.stop.wait(interval):
                return


def tracebacks(output: list[str]) -> list[str]:
    """Each traceback the server logged, with the log line before it and its last lines."""
    found = []
    for i, line in enumerate(output):
        if line.startswith("Traceback"):
            end = next((j for j in range(i + 1, len(output)) if not output[j][:1].isspace()), i)
            found.append("".join(output[max(0, i - 1) : end + 1]))
    return found


def build_from_dockerfile(d: Any, timeout: float = 900) -> Any:
    from daytona import CreateSandboxFromImageParams, Image

    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as f:
        f.write(DOCKERFILE)
        f.flush()
        image = Image.from_dockerfile(f.name)
    return d.create(CreateSandboxFromImageParams(image=image), timeout=timeout)


def prepare_main(sb: Any) -> None:
    """The long-lived sandbox: the preview app, and a git server holding one repository."""
    sb.fs.upload_file((TESTS / "preview_app.py").read_bytes(), "preview_app.py")
    sb.fs.upload_file((TESTS / "git_http_server.py").read_bytes(), "git_http_server.py")
    script = (
        f"python3 preview_app.py {PREVIEW_PORT} </dev/null >/dev/null 2>&1 && "
        "mkdir -p git-root soak-files soak-clones && cd git-root && "
        "git init -q -b main work && cd work && echo 'soak origin' > README.md && "
        "git add . && git -c user.name=soak -c user.email=soak@example.org commit -qm one && "
        "cd .. && git clone -q --bare work origin.git && cd .. && "
        f"GIT_HTTP_USER={GIT_USER} GIT_HTTP_PASSWORD={GIT_PASSWORD} "
        f"python3 git_http_server.py $PWD/git-root {GIT_PORT} </dev/null >/dev/null 2>&1"
    )
    r = sb.process.exec(script, timeout=120)
    if r.exit_code != 0:
        raise RuntimeError(f"preparing the main sandbox failed: {r.result}")


# --- what a control plane leaves on the host ---------------------------------


def instance_of(data_dir: Path) -> str:
    """The local backend's id for a data directory (its cgroups and claims carry it)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def workspace_root(data_dir: Path, instance: str) -> Path:
    top = Path("/var/lib/cove") if os.geteuid() == 0 else data_dir / "sandbox-root"
    return top / instance


def pids_in(marker: str) -> list[int]:
    """Host pids whose cgroup path or command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                text = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                text += f.read().decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(int(entry))
    return found


def live_sandboxes(instance: str) -> int:
    """Sandbox cgroups of this control plane right now (in the memory hierarchy)."""
    n = 0
    for path in cgroup_dirs(instance):
        if "/memory/" in path:
            with contextlib.suppress(OSError):
                n += sum(1 for e in os.scandir(path) if e.is_dir())
    return n


def cgroup_dirs(instance: str, max_depth: int = 6) -> list[str]:
    found = []
    name = f"cove-{instance}"
    for controller in os.listdir("/sys/fs/cgroup"):
        top = f"/sys/fs/cgroup/{controller}"
        for dirpath, dirnames, _ in os.walk(top):
            if dirpath.count("/") - top.count("/") >= max_depth:
                dirnames[:] = []
                continue
            if name in dirnames:
                found.append(f"{dirpath}/{name}")
                dirnames.remove(name)
    return found


def net_claims(instance: str) -> dict[int, str]:
    from cove.runtime.local.net import alloc

    return alloc.owned(instance)


def leftovers(data_dir: Path, instance: str, indices: set[int]) -> dict[str, list[str]]:
    """Everything of this control plane still on the host, by kind (empty lists: clean)."""
    ws = workspace_root(data_dir, instance)
    out: dict[str, list[str]] = {}
    out["processes"] = [
        f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:120]!r}"
        for pid in pids_in(f"cove-{instance}") + pids_in(str(data_dir)) + pids_in(str(ws))
        if Path(f"/proc/{pid}").exists()
    ]
    out["cgroups"] = cgroup_dirs(instance)
    with open("/proc/self/mountinfo") as f:
        out["mounts"] = [line.split()[4] for line in f if str(data_dir) in line or str(ws) in line]
    claims = net_claims(instance)
    out["address claims"] = [f"/run/cove/net/{i} ({sid})" for i, sid in sorted(claims.items())]
    # Indices this run held, unless another control plane has claimed them since.
    from cove.runtime.local.net import alloc

    mine = sorted(i for i in indices if i in claims or not (alloc.REGISTRY / str(i)).exists())
    out["network namespaces"] = [f"cove-{i}" for i in mine if Path(f"/run/netns/cove-{i}").exists()]
    out["interfaces"] = [f"cv-{i}" for i in mine if Path(f"/sys/class/net/cv-{i}").exists()]
    nft = subprocess.run(
        ["nft", "list", "table", "inet", "cove"], capture_output=True, text=True, check=False
    ).stdout
    out["nftables"] = [
        f"sb{i}" for i in mine if re.search(rf"\bsb{i}(_\w+)?\b", nft) or f'"cv-{i}"' in nft
    ] + [f"cap_{instance}"] * (f"chain cap_{instance} " in nft)  # its connection cap
    out["workspace files"] = [str(p) for p in sorted(ws.rglob("*"))][:50] + (
        [str(ws)] if ws.exists() else []
    )
    out["data-dir files"] = [
        str(p.relative_to(data_dir))
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and not kept_state(p.relative_to(data_dir))
    ][:50]
    out["store rows"] = store_rows(data_dir / "cove.db")
    return out


def store_rows(db: Path) -> list[str]:
    """Rows the store still holds after every sandbox was deleted (API keys aside)."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        tables = [
            row[0]
            for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0] not in KEPT_TABLES and not row[0].startswith("sqlite_")
        ]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    return [f"{t}: {n}" for t, n in counts.items() if n]


# What a stopped control plane keeps by design: its store, its image cache and its keys.
KEPT_TABLES = ("api_keys",)
KEPT_FILES = ("api-key", "preview-secret", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub")


def kept_state(rel: Path) -> bool:
    return rel.parts[0] == "images" or rel.name.startswith("cove.db") or str(rel) in KEPT_FILES


# --- the run -----------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[str, bool]:
    host = machine()
    seconds = args.minutes * 60
    periods = {k: v for k, v in PERIODS.items() if k not in set(args.skip)}
    with tempfile.TemporaryDirectory(prefix="cove-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        instance = instance_of(data_dir)
        server = ServerProcess(data_dir, [KEY]).start(60)
        soak = Soak(server, seconds, periods)
        threads: list[threading.Thread] = []
        try:
            d = soak.client()
            main = soak.note(d.create())
            soak.main_id = main.id
            prepare_main(main)
            if "image_build" in periods:  # the first build does the real work, untimed
                d.delete(soak.note(build_from_dockerfile(d)))
            started = time.monotonic()
            deadline = started + seconds
            sampler = threading.Thread(
                target=soak.sampler, args=(args.sample, started, instance), daemon=True
            )
            sampler.start()
            for kind in periods:
                t = threading.Thread(target=soak.worker, args=(kind, deadline), daemon=True)
                threads.append(t)
                t.start()
            for t in threads:
                t.join(max(1.0, deadline - time.monotonic()) + 300)
            hung = [t for t in threads if t.is_alive()]
            if hung:
                soak.errors.append(f"{len(hung)} workers still busy 300 s after the deadline")
            elapsed = time.monotonic() - started
            soak.stop.set()
            sampler.join(30)
            d.delete(main)
        except Exception as exc:
            soak.errors.append(f"setup: {type(exc).__name__}: {exc}"[:300])
            traceback.print_exc()
            elapsed = 0.0
        finally:
            soak.stop.set()
            server.delete_all_sandboxes()
            traceback_lines = tracebacks(server.output)
            server.stop()
            left = leftovers(data_dir, instance, soak.net_indices)
    return render(soak, args, host, elapsed, left, traceback_lines)


def render(
    soak: Soak,
    args: argparse.Namespace,
    host: str,
    elapsed: float,
    left: dict[str, list[str]],
    tracebacks: list[str],
) -> tuple[str, bool]:
    steady = [s for s in soak.samples if s[0] >= 0.1 * elapsed] or soak.samples
    lines = [
        f"{elapsed / 60:.1f} minutes on {host}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}. "
        f"Command: `make soak` (`python -m loadtest.soak --minutes {args.minutes:g}`).",
        "",
        f"- operations completed: {sum(soak.done.values())}; sandboxes created: "
        f"{len(soak.created)}; errors: **{len(soak.errors)}**; server tracebacks: "
        f"{len(tracebacks)}",
        "",
        "| kind | period s | done | median s | max s |",
        "|---|---|---|---|---|",
    ]
    for kind, period in soak.periods.items():
        lat = sorted(soak.latency.get(kind, [0.0]))
        lines.append(
            f"| {kind} | {period:g} | {soak.done[kind]} | {lat[len(lat) // 2]:.2f} | "
            f"{lat[-1]:.2f} |"
        )
    grows = False
    if len(steady) >= 2:
        lines += ["", f"Memory (RSS), sampled every {args.sample:g} s after the first 10%:", ""]
        hours = (steady[-1][0] - steady[0][0]) / 3600 or 1.0
        for name, col in (("server", 1), ("busy agent", 2)):
            pts = [(s[0] / 3600, s[col] / 1024) for s in steady]
            ys = [y for _, y in pts]
            per_hour = slope(pts)
            # Growth the fitted line predicts over the window, against a noise
            # allowance of 3% of the mean (or 2 MiB): more is an upward slope.
            growth = per_hour * hours
            allowance = max(2.0, 0.03 * sum(ys) / len(ys))
            up = growth > allowance
            grows |= up
            lines.append(
                f"- {name}: {ys[0]:.1f} MiB first, {ys[-1]:.1f} MiB last, min {min(ys):.1f}, "
                f"max {max(ys):.1f}; slope {per_hour:+.2f} MiB/hour "
                f"({growth:+.2f} MiB over the window, allowance {allowance:.1f}): "
                f"**{'UPWARD' if up else 'flat'}**"
            )
        live = [s[3] for s in steady]
        lines.append(f"- live sandboxes while sampled: {min(live)} to {max(live)}")
        # Open files: each kept connection is one; a leak shows as a steady climb.
        fds = [(s[0] / 3600, float(s[4])) for s in steady]
        fd_growth = slope(fds) * hours
        fd_up = fd_growth > max(10.0, 0.1 * fds[0][1])
        grows |= fd_up
        lines.append(
            f"- server's open file descriptors: {fds[0][1]:.0f} first, {fds[-1][1]:.0f} last, "
            f"max {max(y for _, y in fds):.0f}; {fd_growth:+.1f} over the window by the fitted "
            f"line: **{'UPWARD' if fd_up else 'flat'}**"
        )
    if soak.samples:  # the samples themselves, thinned to about 15 rows
        lines += ["", "| minute | server MiB | busy agent MiB | live sandboxes | server fds |"]
        lines.append("|---|---|---|---|---|")
        step = max(1, len(soak.samples) // 15)
        for t, server, agent, live_n, fd_n in soak.samples[::step] + soak.samples[-1:]:
            lines.append(
                f"| {t / 60:.1f} | {server / 1024:.1f} | {agent / 1024:.1f} | {live_n} | {fd_n} |"
            )
    total_left = sum(len(v) for v in left.values())
    lines += ["", f"Left behind after the server stopped: **{total_left}**", ""]
    for what, items in left.items():
        lines.append(f"- {what}: {len(items)}" + (f" ({'; '.join(items[:5])})" if items else ""))
    if soak.errors:
        kinds = Counter(e.split(" #")[0] for e in soak.errors)
        lines += ["", "Errors by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.items()), ""]
        lines += [f"- `{e}`" for e in soak.errors[:20]]
    for block in tracebacks[:3]:
        lines += ["", "Server traceback:", "", "```", block.rstrip()[-3000:], "```"]
    ok = not soak.errors and not tracebacks and not grows and total_left == 0 and elapsed > 0
    return "\n".join(lines), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30"))
    )
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(PERIODS))
    parser.add_argument("--report", default="loadtest/SOAK.md", help="full report ('' for none)")
    parser.add_argument("--reliability", default="RELIABILITY.md", help="summary ('' for none)")
    args = parser.parse_args()
    # Stopped by a signal, the run still deletes its sandboxes and stops its server
    # (a shell's background job starts with SIGINT ignored: take it back).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    os.environ["DAYTONA_USE_DEPRECATED_POLLING"] = "false"
    os.environ.setdefault("COVE_IMAGE_BASE_CACHE", "/var/tmp/cove-test-image-bases")
    text, ok = run(args)
    print(text)
    if args.report:
        Path(args.report).write_text("# Soak\n\n" + text + "\n")
    if args.reliability:
        write_section(Path(args.reliability), "soak", "Soak", text)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
