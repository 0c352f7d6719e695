"""The dashboard with many sandboxes: time to first paint of the sandbox list in
headless chromium, against a plain `GET /api/sandbox` of the same list in the same run.

The sandboxes are real, created then stopped (a stopped sandbox is listed like any
other and holds no agent), so hundreds fit on a small host. First paint is the page's
own `cove-list-painted` performance mark (set in the frame after the rows are in the
DOM), measured from the navigation's start: page, scripts, the API call and rendering.

A poll's update is the page's own `cove-list-update` measure: from the moment a
poll's answer is in (the API call excluded) to the end of the frame that shows
it, the style and layout it causes included. It is taken on the same page,
polling every 2 s, with every sandbox listed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.cases.density import _bounded
from bench.client import Cove, acreate
from bench.stats import Row, Summary, stopwatch
from tests.e2e.cdp import Browser, chromium

PAINTED = """
new Promise((resolve) => {
  const look = () => {
    const m = performance.getEntriesByName("cove-list-painted")[0];
    m ? resolve(m.startTime) : setTimeout(look, 20);
  };
  look();
})
"""


UPDATES = """
new Promise((resolve) => {
  const look = () => {
    const m = performance.getEntriesByName("cove-list-update");
    m.length >= %d ? resolve(m.map((e) => e.duration)) : setTimeout(look, 100);
  };
  look();
})
"""


def make_stopped(cove: Cove, n: int, concurrency: int = 4) -> list[str]:
    async def one(client: Any) -> str:
        sid = await acreate(client)
        r = await client.post(f"/api/sandbox/{sid}/stop")
        r.raise_for_status()
        return sid

    async def go() -> list[Any]:
        async with cove.aclient(concurrency) as client:
            return await _bounded(concurrency, [one(client) for _ in range(n)])

    results = asyncio.run(go())
    return [r for r in results if isinstance(r, str)]


def measure(cove: Cove, n: int, runs: int) -> list[Row]:
    binary = chromium()
    if binary is None:
        return [Row("dash_paint", "dashboard list first paint", None, note="no chromium")]
    ids = make_stopped(cove, n - len(cove.list_ids()))
    total = len(cove.list_ids())
    api: list[float] = []
    for _ in range(runs + 2):
        with stopwatch(api):
            assert len(cove.http.get("/api/sandbox").json()["items"]) == total
    api = api[2:]  # the first two warm the server's caches, as the page's would be
    paint: list[float] = []
    browser = Browser(binary, timeout=120)
    try:
        browser.navigate(cove.server.url + "/")
        browser.evaluate(f"document.getElementById('key').value = {cove.server.key!r}")
        browser.send("Page.enable")
        browser.events.clear()
        browser.evaluate("document.querySelector('form.signin').submit()")
        browser.wait_event("Page.loadEventFired")
        browser.evaluate(PAINTED)  # warm-up, as for the API
        for _ in range(runs):
            t0 = time.perf_counter()
            browser.navigate(cove.server.url + "/")
            paint.append(float(browser.evaluate(PAINTED)))
            rows = browser.evaluate("document.querySelectorAll('#sandbox-rows tr').length")
            assert rows == total, f"the page shows {rows} of {total} sandboxes"
            assert time.perf_counter() - t0 < 120
        updates = [float(d) for d in browser.evaluate(UPDATES % (runs + 1))][1:]
    finally:
        browser.close()
    return [
        Row(
            "dash_paint",
            f"dashboard: first paint of the list of {total} sandboxes",
            Summary.of(paint, "ms"),
            Summary.of(api, "ms"),
            f"GET /api/sandbox ({total} items)",
            samples=paint,
            baseline_samples=api,
            note=f"{len(ids)} sandboxes created and stopped for it",
        ),
        Row(
            "dash_poll",
            f"dashboard: one poll's update of the list of {total} sandboxes (2 s polls)",
            Summary.of(updates, "ms"),
            Summary.of(api, "ms"),
            f"GET /api/sandbox ({total} items)",
            samples=updates,
            baseline_samples=api,
            note="from the poll's answer to the end of the frame showing it (page's own measure)",
        ),
    ]
