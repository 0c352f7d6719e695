"""7. Images: time to interactive on a cached custom image against the default image,
a cached rebuild, and the pull and unpack of a 50 MB image from a loopback registry.

The custom image is `python:3.11-slim` (Debian bookworm built here) plus one
RUN step; it is built once before the timed runs. Both time-to-interactive
series run on the same server without a warm pool (an image sandbox is never
pooled), interleaved, so host load hits both alike.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path

from bench.client import CREATE_BODY, Cove, _check
from bench.stats import Row, Summary, stopwatch
from tests.images.registry import loopback_registry, push_tree
from tests.images.rootfs import tiny_rootfs

DOCKERFILE = "FROM python:3.11-slim\nRUN echo bench > /etc/bench\n"
PULL_MB = 50


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(cove: Cove, dockerfile: str, tag: str) -> dict[str, object]:
    tar = _tar({"Dockerfile": dockerfile.encode()})
    with cove.http.stream(
        "POST", "/api/images/build", params={"tag": tag}, content=tar, timeout=1800
    ) as r:
        _check(r, "build")
        events = [json.loads(line) for line in r.iter_lines() if line]
    last = events[-1]
    if "image" not in last:
        raise RuntimeError(f"build failed: {last}")
    return last


def _create(cove: Cove, snapshot: str | None) -> str:
    body = dict(CREATE_BODY, **({"snapshot": snapshot} if snapshot else {}))
    r = _check(cove.http.post("/api/sandbox", json=body, timeout=1800), "create").json()
    if r.get("state") != "started":
        raise RuntimeError(f"create: sandbox is {r.get('state')}: {r.get('errorReason')}")
    return str(r["id"])


def tti(cove: Cove, runs: int) -> Row:
    _build(cove, DOCKERFILE, "bench-img")
    custom: list[float] = []
    default: list[float] = []
    for i in range(runs + 1):
        for snapshot, out in (("bench-img", custom), (None, default)):
            t: list[float] = []
            with stopwatch(t):
                sid = _create(cove, snapshot)
                cove.exec(sid, "true")
            cove.delete(sid)
            if i:
                out.append(t[0])
    c, d = Summary.of(custom, "ms"), Summary.of(default, "ms")
    return Row(
        "tti_image",
        "Time to interactive on a cached custom image (create + first `true`), no pool",
        c,
        d,
        "the default image, same server, interleaved",
        "no slower than the default image (p50 within 10%)",
        c.median <= d.median * 1.10,
        samples=custom,
        baseline_samples=default,
    )


def rebuild(cove: Cove, runs: int) -> Row:
    _build(cove, DOCKERFILE, "bench-img")
    samples: list[float] = []
    for _ in range(runs):
        t: list[float] = []
        with stopwatch(t):
            _build(cove, DOCKERFILE, "bench-img")
        samples.append(t[0])
    s = Summary.of(samples, "ms")
    return Row(
        "rebuild",
        "Cached rebuild of an unchanged image (build request to result)",
        s,
        target="p50 <= 1000 ms",
        met=s.median <= 1000,
        samples=samples,
    )


def pull(cove: Cove, runs: int) -> Row:
    samples: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cove-bench-registry-") as tmp:
        root = Path(tmp)
        with loopback_registry(root / "registry") as address:
            for i in range(runs):
                tree = tiny_rootfs(root / f"tree-{i}")
                # Incompressible, so the registry serves PULL_MB on the wire too.
                with open(tree / "blob", "wb") as f:
                    f.write(os.urandom(PULL_MB << 20))
                ref = f"{address}/bench/big:{i}"
                push_tree(tree, root / f"push-{i}", ref, {}, ["sh"])
                t0 = time.perf_counter()
                _build(cove, f"FROM {ref}\n", f"bench-pulled:{i}")
                samples.append((time.perf_counter() - t0) * 1000)
    s = Summary.of(samples, "ms")
    return Row(
        "pull",
        f"Pull and unpack of a {PULL_MB} MB image from a loopback registry (per layer)",
        s,
        note="each run a new image (new digest): nothing cached",
        samples=samples,
    )
