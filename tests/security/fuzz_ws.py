"""The WebSocket half of `make fuzz`: generated interpreter frames and log-follow targets.

OpenAPI cannot describe these routes, so their shapes are written here (wire
page §4.3 and §5). A run must end in a close code a client can act on: 1000
(done), 4008 (timed out) or 44xx (bad request, not found), never 1011 (the
agent's own error) or a dropped connection.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.security.fuzz import CLEAN, JSONV, TEXT, RawBody, Tally, mostly

ACCEPTED = {1000, 4008}


def _frames(contexts: list[str]) -> st.SearchStrategy[Any]:
    request = st.fixed_dictionaries(
        {"code": CLEAN},
        optional={
            "contextId": mostly(contexts),
            "envs": st.dictionaries(CLEAN, CLEAN, max_size=3),
            "timeout": st.floats(0.1, 2),
            "stdin": CLEAN,
        },
    )
    hostile = st.fixed_dictionaries(
        {"code": TEXT}, optional={"contextId": TEXT, "envs": JSONV, "timeout": JSONV}
    )
    return st.one_of(
        request.map(json.dumps),
        request.map(json.dumps),
        hostile.map(json.dumps),
        JSONV.map(json.dumps),
        st.binary(max_size=64).map(RawBody),
    )


def _close_code(url: str, client: httpx.Client, frame: Any) -> int | str:
    """The close code of one run (or what went wrong instead)."""
    from httpx_ws import HTTPXWSException, WebSocketDisconnect, WebSocketUpgradeError, connect_ws

    try:
        ws: Any
        with connect_ws(url, client) as ws:
            if isinstance(frame, RawBody):
                ws.send_bytes(frame.data)
            elif frame is not None:
                ws.send_text(frame)
            while True:
                ws.receive(timeout=30)
    except WebSocketDisconnect as closed:
        return int(closed.code)
    except WebSocketUpgradeError as refused:
        return refused.response.status_code
    except (HTTPXWSException, httpx.HTTPError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"


def fuzz_websockets(
    base_url: str,
    auth: dict[str, str],
    live: str,
    pools: dict[str, list[str]],
    examples: int,
    tally: Tally,
) -> None:
    """`examples` interpreter runs and as many log-follow attempts, counted into `tally`."""
    base = f"{base_url}/toolbox/{live}/process"
    with httpx.Client(headers=auth, timeout=60) as client:
        _fuzz(client, base, pools, examples, tally)


def _fuzz(
    client: httpx.Client, base: str, pools: dict[str, list[str]], examples: int, tally: Tally
) -> None:

    def count(name: str, code: int | str, drawn: Any) -> None:
        tally.requests += 1
        if isinstance(code, int):
            tally.by_status[code] += 1
            tally.by_operation[name][code] += 1
        ok = code in ACCEPTED or (isinstance(code, int) and 400 <= code % 4000 < 500)
        if not ok:
            tally.failures.append(f"{name}: {code} <- {drawn!r:.300}")

    common = settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )

    @common
    @given(_frames(pools["contextId"]))
    def interpreter(frame: Any) -> None:
        name = "WS /toolbox/{sandboxId}/process/interpreter/execute"
        count(name, _close_code(f"{base}/interpreter/execute", client, frame), frame)

    @common
    @given(mostly(pools["sessionId"]), mostly(pools["commandId"]))
    def follow(session: str, command: str) -> None:
        name = "WS /toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/logs"
        ids = [
            quote(part.encode("utf-8", "replace").decode(), safe="") or "%20"
            for part in (session, command)
        ]
        url = f"{base}/session/{ids[0]}/command/{ids[1]}/logs?follow=true"
        count(name, _close_code(url, client, None), (session, command))

    interpreter()
    follow()
