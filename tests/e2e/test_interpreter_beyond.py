"""What Cove's interpreter adds to Daytona's, on the raw WebSocket: rich
`result` frames (trailing expressions, matplotlib PNGs, HTML tables, images),
an explicit interrupt, and clients that disconnect mid-run."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, WebSocketSession, connect_ws

from tests.serverproc import ServerProcess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    def text(self, kind: str) -> str:
        return "".join(f["text"] for f in self.of(kind))


@pytest.fixture
def ws_client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {server.key}"}, timeout=60) as c:
        yield c


def _url(server: ServerProcess, sandbox: Any) -> str:
    return f"ws://127.0.0.1:{server.port}/toolbox/{sandbox.id}/process/interpreter/execute"


def _collect(ws: WebSocketSession, run: Run, deadline: float = 30) -> Run:
    try:
        while True:
            run.frames.append(json.loads(ws.receive_text(timeout=deadline)))
    except WebSocketDisconnect as closed:
        run.close_code, run.close_reason = closed.code, closed.reason or ""
    return run


def run_code(client: httpx.Client, url: str, request: dict[str, Any]) -> Run:
    with connect_ws(url, client, max_message_size_bytes=16 * 1024 * 1024) as ws:
        ws.send_text(json.dumps(request))
        return _collect(ws, Run())


def test_trailing_expression_value_is_a_main_result(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any
) -> None:
    url = _url(server, sandbox)
    run = run_code(ws_client, url, {"code": "x = 20\nprint('side')\nx * 2 + 2"})
    assert run.close_code == 1000
    assert run.text("stdout") == "side\n"
    (result,) = run.of("result")
    assert result == {"type": "result", "data": {"text/plain": "42"}, "isMainResult": True}
    # Output frames come in the order they happened: the print before the value.
    assert [f["type"] for f in run.frames] == ["stdout", "result"]
    # None, assignments and a muting semicolon give no result.
    for code in ("y = 1", "None", "x;", "print(x)"):
        assert run_code(ws_client, url, {"code": code}).of("result") == [], code


@pytest.mark.timeout(300)
def test_matplotlib_figures_come_back_as_png(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any
) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\nplt.title('shown')\nplt.show()\n"
        "print('between')\n"
        "plt.figure()\nplt.bar(['a', 'b'], [3, 5]);\n"  # left open: sent at the end
    )
    run = run_code(ws_client, _url(server, sandbox), {"code": code})
    assert run.close_code == 1000 and not run.of("error"), run.frames
    figures = run.of("result")
    assert len(figures) == 2
    for fig in figures:
        assert fig["isMainResult"] is False
        assert base64.b64decode(fig["data"]["image/png"]).startswith(PNG_MAGIC)
        assert fig["data"]["text/plain"].startswith("<Figure")
    kinds = [f["type"] for f in run.frames]
    assert kinds.index("stdout") == kinds.index("result") + 1  # shown before the print
    # Nothing stays open to be sent again.
    again = run_code(ws_client, _url(server, sandbox), {"code": "plt.get_fignums()"})
    assert again.of("result")[0]["data"]["text/plain"] == "[]"


def test_html_and_png_reprs(ws_client: httpx.Client, server: ServerProcess, sandbox: Any) -> None:
    url = _url(server, sandbox)
    df = run_code(ws_client, url, {"code": "import pandas as pd\npd.DataFrame({'a': [1, 2]})"})
    data = df.of("result")[0]["data"]
    assert "<table" in data["text/html"] and "a" in data["text/plain"]
    img = run_code(
        ws_client, url, {"code": "from PIL import Image\nImage.new('RGB', (4, 4), 'red')"}
    )
    data = img.of("result")[0]["data"]
    assert base64.b64decode(data["image/png"]).startswith(PNG_MAGIC)
    shown = run_code(ws_client, url, {"code": "display(1, 'two')\n3"})
    assert [(r["data"]["text/plain"], r["isMainResult"]) for r in shown.of("result")] == [
        ("1", False),
        ("'two'", False),
        ("3", True),
    ]


def test_explicit_interrupt_keeps_state(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any, api: httpx.Client
) -> None:
    ctx = api.post(f"/toolbox/{sandbox.id}/process/interpreter/context", json={}).json()
    url = _url(server, sandbox)
    try:
        run_code(ws_client, url, {"code": "kept = 'yes'", "contextId": ctx["id"]})
        run = Run()
        with connect_ws(url, ws_client) as ws:
            ws.send_text(
                json.dumps(
                    {
                        "code": "import time\nprint('started')\nwhile True:\n    time.sleep(0.1)",
                        "contextId": ctx["id"],
                    }
                )
            )
            run.frames.append(json.loads(ws.receive_text(timeout=30)))  # 'started'
            r = api.post(f"/toolbox/{sandbox.id}/process/interpreter/context/{ctx['id']}/interrupt")
            assert r.json() == {"interrupted": True, "contextId": ctx["id"]}
            _collect(ws, run)
        assert run.close_code == 1000
        (err,) = run.of("error")
        assert err["name"] == "KeyboardInterrupt"
        after = run_code(ws_client, url, {"code": "print(kept)", "contextId": ctx["id"]})
        assert after.text("stdout") == "yes\n"
        idle = api.post(f"/toolbox/{sandbox.id}/process/interpreter/context/{ctx['id']}/interrupt")
        assert idle.json()["interrupted"] is False
    finally:
        api.delete(f"/toolbox/{sandbox.id}/process/interpreter/context/{ctx['id']}")


def test_a_client_that_disconnects_interrupts_its_run(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any, api: httpx.Client
) -> None:
    ctx = api.post(f"/toolbox/{sandbox.id}/process/interpreter/context", json={}).json()
    url = _url(server, sandbox)
    try:
        run_code(ws_client, url, {"code": "state = 7", "contextId": ctx["id"]})
        with connect_ws(url, ws_client) as ws:
            ws.send_text(
                json.dumps(
                    {
                        "code": "import time\nprint('go')\ntime.sleep(600)",
                        "contextId": ctx["id"],
                        "timeout": 0,
                    }
                )
            )
            assert json.loads(ws.receive_text(timeout=30))["text"].startswith("g")
        # The client is gone; the next run must not wait 600 s behind it (it
        # would end at the client's receive deadline, far shorter, instead).
        after = run_code(ws_client, url, {"code": "print(state)", "contextId": ctx["id"]})
        assert after.text("stdout") == "7\n"
    finally:
        api.delete(f"/toolbox/{sandbox.id}/process/interpreter/context/{ctx['id']}")


def test_runs_on_one_context_queue_in_order(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any
) -> None:
    url = _url(server, sandbox)
    fast: list[Run] = []
    slow = Run()
    with connect_ws(url, ws_client) as ws:
        ws.send_text(
            json.dumps({"code": "import time\norder = ['slow']\nprint('in')\ntime.sleep(1)"})
        )
        slow.frames.append(json.loads(ws.receive_text(timeout=30)))  # the slow run holds it
        t = threading.Thread(
            target=lambda: fast.append(
                run_code(ws_client, url, {"code": "order.append('fast')\norder"})
            )
        )
        t.start()
        _collect(ws, slow)
    t.join(30)
    assert slow.close_code == 1000
    assert fast[0].of("result")[0]["data"]["text/plain"] == "['slow', 'fast']"


def test_bad_requests_close_with_a_reason(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any
) -> None:
    url = _url(server, sandbox)
    unknown = run_code(ws_client, url, {"code": "1", "contextId": "nope"})
    assert unknown.close_code == 4404 and "not found" in unknown.close_reason
    bad = run_code(ws_client, url, {"code": 5})
    assert bad.close_code == 4400 and "code" in bad.close_reason
    timed = run_code(ws_client, url, {"code": "import time\ntime.sleep(5)", "timeout": 0.5})
    assert timed.close_code == 4008


def test_stdin_for_one_run(ws_client: httpx.Client, server: ServerProcess, sandbox: Any) -> None:
    url = _url(server, sandbox)
    fed = run_code(
        ws_client,
        url,
        {"code": "a = input('a? ')\nb = input()\nprint(a, b)", "stdin": "one\ntwo\n"},
    )
    assert fed.text("stdout") == "a? one two\n" and not fed.of("error")
    # The next run gets EOF again, not what the last one left unread.
    after = run_code(ws_client, url, {"code": "input()"})
    assert after.of("error")[0]["name"] == "EOFError"


def test_a_worker_that_exits_or_is_deleted_mid_run(
    ws_client: httpx.Client, server: ServerProcess, sandbox: Any, api: httpx.Client
) -> None:
    base = f"/toolbox/{sandbox.id}/process/interpreter/context"
    ctx = api.post(base, json={}).json()
    url = _url(server, sandbox)
    run_code(ws_client, url, {"code": "x = 1", "contextId": ctx["id"]})
    gone = run_code(ws_client, url, {"code": "import os\nos._exit(5)", "contextId": ctx["id"]})
    (err,) = gone.of("error")
    assert err["name"] == "ContextRestarted" and "exit code 5" in err["value"]
    fresh = run_code(ws_client, url, {"code": "'x' in globals()", "contextId": ctx["id"]})
    assert fresh.of("result")[0]["data"]["text/plain"] == "False"

    run = Run()
    with connect_ws(url, ws_client) as ws:
        code = "import time\nprint('up')\ntime.sleep(600)"
        ws.send_text(json.dumps({"code": code, "contextId": ctx["id"]}))
        run.frames.append(json.loads(ws.receive_text(timeout=30)))
        assert api.delete(f"{base}/{ctx['id']}").status_code == 200
        _collect(ws, run)
    assert run.close_code == 1000
    assert run.of("error")[-1]["name"] == "ContextDeleted"
    assert ctx["id"] not in [c["id"] for c in api.get(base).json()["contexts"]]
