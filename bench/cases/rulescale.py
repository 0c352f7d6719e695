"""Network rules at scale: the nftables work of one sandbox's create and delete, with
few and with many sandboxes' rules already on the host.

Measured in a network namespace this run makes (nftables tables are per
namespace), so the host's own table is untouched. The figure is the CPU time
of the `nft` processes (user and kernel) that `rules.add_sandbox` and
`rules.remove_sandbox` run. It grew with the square of the sandboxes while each
sandbox had interval sets (nft 1.0 reads every interval set's elements before
it changes a map): 2.4 s per create and delete with 1,000 (bench/notes-2026-12.md).

`python -m bench.cases.rulescale --child N RUNS` is the part that runs inside
the namespace, printing its samples as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from bench.stats import Row, Summary, not_measured
from tests.network.internet import can_run

FEW, MANY = 10, 1000
PROBE = 5000  # slot indices of the measured sandboxes, apart from the standing ones


def measure(quick: bool) -> list[Row]:
    title = f"Network rules: one sandbox's create and delete with {MANY} sandboxes on the host"
    why = can_run()
    if why:
        return [not_measured("rulescale", title, "", why)]
    many, runs = (100, 5) if quick else (MANY, 20)
    ns = f"cove-bench-rules-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        child = [sys.executable, "-m", "bench.cases.rulescale", "--child", str(many), str(runs)]
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *child], capture_output=True, text=True, check=False
        )
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    if done.returncode != 0:
        return [not_measured("rulescale", title, "", done.stderr.strip()[-300:])]
    samples = json.loads(done.stdout)
    few, lots = samples[str(FEW)], samples[str(many)]
    return [
        Row(
            "rulescale",
            title.replace(str(MANY), str(many)),
            Summary.of(lots, "ms"),
            Summary.of(few, "ms"),
            f"the same with {FEW} sandboxes",
            note="CPU time of the nft processes (user + kernel), in a namespace of its own; "
            "lower is better",
            samples=lots,
            baseline_samples=few,
        )
    ]


def _child(many: int, runs: int) -> dict[str, list[float]]:
    from cove.runtime.local.net import rules
    from cove.runtime.local.net.alloc import Slot
    from cove.wire.protocol.network import NetworkPolicy

    policy = NetworkPolicy()
    rules.nft(rules._BASE + f"add chain {rules.TABLE} {rules.cap_chain('bench')}\n")

    def cpu_ms() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (r.ru_utime + r.ru_stime) * 1000

    out: dict[str, list[float]] = {}
    standing = 0
    for n in (FEW, many):
        while standing < n:
            standing += 1
            rules.add_sandbox(Slot(standing), policy, "bench")
        samples = []
        for i in range(runs):
            before = cpu_ms()
            rules.add_sandbox(Slot(PROBE + i), policy, "bench")
            rules.remove_sandbox(Slot(PROBE + i))
            samples.append(cpu_ms() - before)
        out[str(n)] = samples
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    print(json.dumps(_child(int(sys.argv[2]), int(sys.argv[3]))))
