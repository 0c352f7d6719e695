"""`python -m bench [--quick]`: start a real `cove serve`, measure, write the report."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

from bench import report
from bench.cases import (
    breakdown,
    cluster,
    dashboard,
    density,
    evaluation,
    execute,
    files,
    images,
    interpreter,
    lifecycle,
    mcp,
    network,
    preview,
    rulescale,
    sdks,
    streaming,
)
from bench.client import NO_QUOTAS, Cove
from bench.stats import Row
from cove.settings import Settings
from tests.serverproc import ServerProcess

GiB = 1 << 30


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="small run counts (smoke test)")
    # The server's own default, so the report measures what `make run` gives a user.
    default_pool = next(f.default for f in fields(Settings) if f.name == "warm_pool")
    p.add_argument(
        "--pool",
        type=int,
        default=default_pool,
        help=f"warm pool size of the main server (default: the server's, {default_pool})",
    )
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    p.add_argument(
        "--only",
        default="",
        help="areas, comma-separated: "
        "exec,interp,stream,files,preview,eval,mcp,tti,density,network,dashboard,cluster,images",
    )
    return p.parse_args()


@contextlib.contextmanager
def serving(data_dir: Path, pool: int) -> Iterator[Cove]:
    """A real `cove serve` on a fresh data dir, with a warm pool of `pool` sandboxes."""
    # COVE_PHASE_LOG: the server prints where each sandbox start spent its time.
    env = {"COVE_WARM_POOL": str(pool), "COVE_PHASE_LOG": "1", **NO_QUOTAS}
    server = ServerProcess(data_dir, ["bench-key"], env=env).start(timeout=60)
    cove = Cove(server)
    try:
        yield cove
    finally:
        with contextlib.suppress(Exception):
            density.delete_many(cove, cove.list_ids())
        cove.close()
        server.stop()


def main() -> None:
    args = parse()
    q = args.quick
    only = set(filter(None, args.only.split(",")))
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    started = time.perf_counter()
    rows: list[Row] = []

    def area(name: str, fn: Callable[[], list[Row]]) -> None:
        if only and name not in only:
            return
        t0 = time.perf_counter()
        load = os.getloadavg()[0]
        print(f"[bench] {name} ...", flush=True)
        try:
            got = fn()
        except Exception as exc:  # one broken area must not lose the others' figures
            traceback.print_exc()
            got = [Row(name, name, None, note=f"not measured: the run failed: {exc}")]
        for r in got:
            # Other work on the host shows in every figure: say how busy it was.
            r.note = f"{r.note}; " if r.note else ""
            r.note += f"host load average {load:.1f} when this area started"
            print(f"[bench]   {r.title}: {r.cove.cell() if r.cove else r.note}", flush=True)
        print(f"[bench]   ({time.perf_counter() - t0:.1f} s)", flush=True)
        rows.extend(got)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cove-bench-") as tmp:
        # Cold starts first, on a server without a warm pool.
        with serving(Path(tmp) / "cold", pool=0) as cold:

            def cold_tti() -> list[Row]:
                since = len(cold.server.output)
                seq = lifecycle.sequential(cold, 8 if q else 20, pooled=False)
                parts = breakdown.cold(cold, seq, since)
                seq.note = "; ".join(filter(None, [seq.note, breakdown.largest(parts)]))
                parts += breakdown.agent_start(8 if q else 20)
                n = 10 if q else 100
                try:  # a burst that fails (e.g. a start timed out) keeps the rows above
                    burst = lifecycle.burst(cold, n, pooled=False)[0]
                except Exception as exc:
                    burst = Row(
                        "burst_cold",
                        f"Burst: {n} creates at once, until all are interactive, cold start",
                        None,
                        target=f"all within {lifecycle.BURST_TARGET_MS:g} ms",
                        note=f"not measured: the run failed: {str(exc)[:300]}",
                    )
                return [seq, burst, *parts]

            area("tti", cold_tti)
            density.delete_many(cold, cold.list_ids())

            def on_ray() -> list[Row]:
                with cluster.ray_serving(Path(tmp) / "ray") as ray:
                    return cluster.measure(cold, ray, 12 if q else 30, 60 if q else 300)

            area("cluster", on_ray)
            area(
                "images",
                lambda: [
                    images.tti(cold, 8 if q else 20),
                    images.rebuild(cold, 5 if q else 20),
                    images.pull(cold, 1 if q else 3),
                ],
            )
            density.delete_many(cold, cold.list_ids())
        with serving(Path(tmp) / "main", pool=args.pool) as cove:
            warm = cove.create()

            def exec_area() -> list[Row]:
                rtt = execute.exec_rtt(cove, warm, 60 if q else 300)
                parts = breakdown.exec_path(cove, warm, rtt, 60 if q else 300)
                rtt.note = "; ".join(filter(None, [rtt.note, breakdown.largest(parts[1:])]))
                sdk = sdks.measure(cove, warm, 30 if q else 200)
                return [rtt, execute.code_run(cove, warm, 20 if q else 100), *sdk, *parts]

            area("exec", exec_area)
            area(
                "interp",
                lambda: interpreter.measure(
                    cove, warm, 30 if q else 200, 3 if q else 10, 1 if q else 3
                ),
            )
            area(
                "stream",
                lambda: [streaming.measure(cove, warm, (GiB // 8) if q else GiB, 1 if q else 3)],
            )
            area(
                "files",
                lambda: files.measure(cove, warm, (GiB // 8) if q else 2 * GiB, 1 if q else 3),
            )
            area(
                "preview",
                lambda: preview.measure_in_own_sandbox(
                    cove, 100 if q else 500, (32 if q else 256) * (1 << 20), 1 if q else 3
                ),
            )
            area(
                "eval",
                lambda: [
                    *evaluation.measure(cove, 5 if q else 20, 1 if q else 3),
                    *evaluation.measure(cove, 10 if q else 100, 1),
                ],
            )
            area("mcp", lambda: mcp.measure(cove, warm, 20 if q else 100))
            area("tti", lambda: [lifecycle.sequential(cove, 8 if q else 30, pooled=True)])
            kept: list[str] = [warm]

            def many() -> list[Row]:
                burst, ids = lifecycle.burst(cove, 10 if q else 50, pooled=True)
                kept.extend(ids)
                # COVE_BENCH_IDLE=1000: the opt-in "1,000 idle sandboxes all answer" run
                # (minutes of creates, and ~12 GB of memory at today's PSS).
                total = int(os.environ.get("COVE_BENCH_IDLE") or (20 if q else 200))
                got, all_ids = density.density(cove, list(kept), total)
                kept[:] = all_ids
                conc = density.concurrency(cove, all_ids[: 10 if q else 50], 10, 5 if q else 10)
                return [burst, *got, conc]

            area("density", many)
            density.delete_many(cove, cove.list_ids())
        area("network", lambda: [*network.measure(q), *rulescale.measure(q)])
        if not only or "dashboard" in only:
            # Its own server: hundreds of stopped sandboxes, listed by the page and the API.
            with serving(Path(tmp) / "dash", pool=0) as dash:
                area("dashboard", lambda: dashboard.measure(dash, 50 if q else 500, 3 if q else 10))
    conditions = (
        f"warm pool of {args.pool} (COVE_WARM_POOL) on the main server; host load average "
        f"{load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after the run"
    )
    seconds = time.perf_counter() - started
    argv = "python -m bench" + (" --quick" if q else "")
    path = report.write(rows, argv, seconds, args.out, conditions)
    print(f"[bench] wrote {path} in {seconds:.0f} s")
    sys.exit(0)
