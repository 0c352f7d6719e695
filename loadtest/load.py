"""`make load`: many concurrent clients running a mix of calls against one server.

100 clients (default) for 60 s, each looping over exec, code_run, a session
command and an interpreter run (a fresh WebSocket per run, as the official
SDK does), against a fresh server on loopback. Reports per-operation
latency (median, p95, p99), throughput, every error, and the server's memory
before, right after, and after a settle period. Exit status 1 on any error.
Bounded: the run stops by itself at the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from loadtest.report import machine, write_section
from tests.serverproc import ServerProcess

KEY = "load-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    def __init__(self, server: ServerProcess, sandboxes: list[str]) -> None:
        self.server = server
        self.sandboxes = sandboxes
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    async def op_exec(self, c: httpx.AsyncClient, sid: str, n: int) -> None:
        r = await c.post(f"/toolbox/{sid}/process/execute", json={"command": f"echo {n}"})
        if r.status_code != 200 or r.json()["stdout"] != f"{n}\n":
            raise AssertionError(f"exec: {r.status_code} {r.text[:200]}")

    async def op_code_run(self, c: httpx.AsyncClient, sid: str, n: int) -> None:
        r = await c.post(
            f"/toolbox/{sid}/process/code-run", json={"code": f"print({n})", "language": "python"}
        )
        if r.status_code != 200 or r.json()["result"] != f"{n}\n":
            raise AssertionError(f"code_run: {r.status_code} {r.text[:200]}")

    async def op_session(self, c: httpx.AsyncClient, sid: str, n: int) -> None:
        r = await c.post(f"/toolbox/{sid}/process/session/load/exec", json={"command": f"echo {n}"})
        if r.status_code != 200 or r.json()["stdout"] != f"{n}\n":
            raise AssertionError(f"session: {r.status_code} {r.text[:200]}")

    async def op_interpreter(self, c: httpx.AsyncClient, sid: str, n: int) -> None:
        url = f"ws://127.0.0.1:{self.server.port}/toolbox/{sid}/process/interpreter/execute"
        out = []
        async with connect(url, additional_headers=HEADERS, open_timeout=30) as ws:
            await ws.send(json.dumps({"code": f"print({n})"}))
            async for message in ws:
                frame = json.loads(message)
                if frame.get("type") == "stdout":
                    out.append(frame["text"])
                elif frame.get("type") == "error":
                    raise AssertionError(f"interpreter error frame: {frame}")
            code = ws.close_code
        if code != 1000 or "".join(out) != f"{n}\n":
            raise AssertionError(f"interpreter: close {code}, output {out!r}")

    async def client(self, i: int, deadline: float) -> None:
        ops = [self.op_exec, self.op_code_run, self.op_session, self.op_interpreter]
        sid = self.sandboxes[i % len(self.sandboxes)]
        n = 0
        async with httpx.AsyncClient(base_url=self.server.url, headers=HEADERS, timeout=60) as c:
            while time.monotonic() < deadline:
                op = ops[(i + n) % len(ops)]
                n += 1
                start = time.perf_counter()
                try:
                    await op(c, sid, n)
                except Exception as exc:  # every failure is counted and reported
                    self.errors.append(f"{op.__name__}: {type(exc).__name__}: {exc}"[:300])
                    continue
                self.latency[op.__name__[3:]].append(time.perf_counter() - start)


async def setup(server: ServerProcess, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=60) as c:
        sids = []
        for _ in range(count):
            sid = (await c.post("/api/sandbox", json={})).json()["id"]
            await c.post(f"/toolbox/{sid}/process/session", json={"sessionId": "load"})
            sids.append(sid)
        return sids


async def main_async(args: argparse.Namespace) -> int:
    host = machine()
    with tempfile.TemporaryDirectory(prefix="cove-load-") as tmp:
        server = ServerProcess(Path(tmp) / "data", [KEY]).start()
        assert server.proc is not None
        try:
            sids = await setup(server, args.sandboxes)
            load = Load(server, sids)
            # Warm-up pass so that "before" is the server's steady state.
            await asyncio.gather(*(load.client(i, time.monotonic() + 3) for i in range(10)))
            load.latency.clear()
            load.errors.clear()
            before = rss_kib(server.proc.pid)
            started = time.monotonic()
            deadline = started + args.seconds
            await asyncio.gather(*(load.client(i, deadline) for i in range(args.clients)))
            elapsed = time.monotonic() - started
            after = rss_kib(server.proc.pid)
            await asyncio.sleep(args.settle)  # let closed connections be collected
            settled = rss_kib(server.proc.pid)
        finally:
            server.delete_all_sandboxes()
            server.stop()
    total = sum(len(v) for v in load.latency.values())
    lines = [
        f"{args.clients} concurrent clients, {args.sandboxes} sandboxes, {elapsed:.0f} s, "
        f"on {host}. Command: `make load` (`python -m loadtest.load --clients {args.clients} "
        f"--seconds {args.seconds}`).",
        "",
        f"- completed calls: {total} ({total / elapsed:.0f}/s); errors: **{len(load.errors)}**",
        f"- server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB right after, "
        f"{settled / 1024:.1f} MiB after {args.settle:g} s",
        "",
        "| operation | n | median ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, values in sorted(load.latency.items()):
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(values) * 1000:.1f} | "
            f"{pct(values, 0.95) * 1000:.1f} | {pct(values, 0.99) * 1000:.1f} |"
        )
    if load.errors:
        lines += ["", "First errors:", ""] + [f"- `{e}`" for e in load.errors[:10]]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.report), "load", "Load", text)
    return 1 if load.errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sandboxes", type=int, default=10)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--report", default="RELIABILITY.md")
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
