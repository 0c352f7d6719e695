"""The dashboard in a real browser: headless Debian chromium over the DevTools protocol
against a real server. Signs in, creates a sandbox from the form, types into the
terminal and reads the answer off the screen, follows a command's log while it runs,
uploads a file, opens a preview link, checks that sandbox output and labels that look
like HTML stay text and that another key's sandbox is absent, and signs out.
Screenshots of each page land in build/test-artifacts/."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cdp import Browser, chromium, desktop_browser
from tests.e2e.test_preview import PORT, start_app
from tests.serverproc import ServerProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
INJECTION = "<img src=x onerror=alert(1)><script>window.pwned=1</script>"

pytestmark = pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with desktop_browser() as b:
        yield b


def wait_for(browser: Browser, condition: str, timeout_ms: int = 30000) -> Any:
    """The page's value of `condition` (a JS expression) once truthy, within a deadline."""
    return browser.evaluate(f"""
new Promise((resolve, reject) => {{
  const end = Date.now() + {timeout_ms};
  const check = () => {{
    let v = null;
    try {{ v = ({condition}); }} catch (e) {{ v = null; }}
    if (v) return resolve(v);
    if (Date.now() > end) return reject(new Error("timed out: " + {json.dumps(condition)}));
    setTimeout(check, 50);
  }};
  check();
}})""")


def navigating(browser: Browser, script: str) -> None:
    """Runs `script` (which submits a form or follows a link) and waits for the new page."""
    browser.send("Page.enable")
    browser.events.clear()
    browser.evaluate(script)
    browser.wait_event("Page.loadEventFired")


def set_value(browser: Browser, selector: str, value: str) -> None:
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")


def change(browser: Browser, selector: str, value: str) -> None:
    """Sets a field as a person would: the value, then its change event."""
    set_value(browser, selector, value)
    browser.evaluate(
        f"document.querySelector({json.dumps(selector)}).dispatchEvent(new Event('change'))"
    )


def click(browser: Browser, selector: str) -> None:
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def press_enter(browser: Browser) -> None:
    for kind in ("keyDown", "keyUp"):
        browser.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                     windowsVirtualKeyCode=13, text="\r" if kind == "keyDown" else "")  # fmt: skip


@pytest.mark.timeout(240)
def test_dashboard_in_a_browser(
    browser: Browser, server: ServerProcess, daytona: Any, other_daytona: Any
) -> None:
    theirs = other_daytona.create()
    name = f"dash-{secrets.token_hex(3)}"
    try:
        browser.navigate(server.url + "/")
        assert wait_for(browser, "!!document.getElementById('key')")
        browser.screenshot(ARTIFACTS / "dashboard-sign-in.png")
        set_value(browser, "#key", server.key)
        navigating(browser, "document.querySelector('form.signin').submit()")
        assert browser.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        assert browser.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") \
            == "{}{}"  # fmt: skip
        wait_for(browser, "document.getElementById('sandbox-count').textContent")

        # Create from the form, with a label that looks like markup.
        set_value(browser, "#new-name", name)
        set_value(browser, "#new-labels", f"owner=dash\nnote={INJECTION}")
        set_value(browser, "#new-env", "GREETING=hi")
        click(browser, "#create")
        rows = "[...document.querySelectorAll('#sandbox-rows tr')]"
        row = f"{rows}.find(r => r.textContent.includes('{name}'))"
        wait_for(browser, f"{row} && {row}.dataset.state === 'started'", 60000)
        sid = browser.evaluate(f"{row}.dataset.id")
        labels = browser.evaluate(f"{row}.querySelector('.labels').textContent")
        assert INJECTION in labels  # shown as the characters it is
        assert (
            browser.evaluate("document.querySelector('#sandbox-rows img, #sandbox-rows script')")
            is None
        )
        # Live metrics fill in for a started sandbox.
        wait_for(browser, f"{row}.querySelector('.cpu-now').textContent.endsWith('%')")
        # The other key's sandbox is not on the page.
        assert theirs.id not in browser.evaluate("document.body.innerText")
        assert browser.evaluate("document.querySelectorAll('#sandbox-rows tr').length") >= 1
        # The state filter: `stopped` hides it, `any` brings it back.
        change(browser, "#filter-state", "stopped")
        wait_for(browser, f"!({row})")
        change(browser, "#filter-state", "started")
        change(browser, "#filter-label", "owner=dash")
        wait_for(browser, f"{row} && document.querySelectorAll('#sandbox-rows tr').length === 1")
        wait_for(browser, f"{row}.querySelector('.mem-now').textContent.endsWith('B')")
        browser.screenshot(ARTIFACTS / "dashboard-list.png")
        # Polls update the rows in place: the same elements, a text selection and the
        # focus kept across them.
        browser.evaluate(
            f"window.keptRow = {row}; const range = document.createRange();"
            f" range.selectNodeContents({row}.querySelector('.labels'));"
            " getSelection().removeAllRanges(); getSelection().addRange(range);"
            f" {row}.querySelector('.act-stop').focus()"
        )
        polls = "performance.getEntriesByName('cove-list-update').length"
        wait_for(browser, f"{polls} >= {browser.evaluate(polls)} + 2")
        assert browser.evaluate(f"{row} === window.keptRow")
        assert INJECTION in browser.evaluate("getSelection().toString()")
        assert browser.evaluate("document.activeElement.className") == "act-stop"

        # One sandbox: the terminal answers what is typed.
        browser.evaluate(f"location.hash = '#/sandbox/{sid}'")
        wait_for(browser, "document.querySelector('.terminal[data-connected=true]')")
        browser.send("Input.insertText", text="echo $((6*7)) $GREETING")
        press_enter(browser)
        screen = "document.querySelector('.terminal:not([hidden]) .xterm-rows').innerText"
        wait_for(browser, f"{screen}.split('\\n').some(l => l.trim() === '42 hi')")
        browser.screenshot(ARTIFACTS / "dashboard-terminal.png")
        # The terminal follows the window's size: the PTY is resized to match.
        sb = daytona.get(sid)
        pty = browser.evaluate("document.querySelector('.terminal').dataset.pty")
        wide = sb.process.get_pty_session_info(pty).cols
        assert wide > 100  # 1280 pixels of 14-pixel text
        browser.send("Emulation.setDeviceMetricsOverride", width=800, height=700,
                     deviceScaleFactor=1, mobile=False)  # fmt: skip
        # The page marks the size the server has acknowledged.
        wait_for(browser, f"Number(document.querySelector('.terminal').dataset.cols) < {wide}")
        narrow = sb.process.get_pty_session_info(pty).cols
        assert narrow < wide
        assert narrow == int(browser.evaluate("document.querySelector('.terminal').dataset.cols"))
        browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=860,
                     deviceScaleFactor=1, mobile=False)  # fmt: skip
        # A second terminal tab is a second shell.
        click(browser, "#new-terminal")
        wait_for(
            browser, "document.querySelectorAll('.terminal[data-connected=true]').length === 2"
        )

        # A command's log, followed while it runs: stdout and stderr apart, markup as text.
        click(browser, "#tab-commands")
        command = ("for i in 1 2 3; do echo out-$i; echo err-$i >&2; sleep 0.4; done; "
                   f"echo '{INJECTION}'")  # fmt: skip
        set_value(browser, "#command-input", command)
        browser.evaluate("document.getElementById('command-form').requestSubmit()")
        wait_for(browser, "document.getElementById('log-stdout').textContent.includes('out-1')")
        assert browser.evaluate("document.getElementById('log-title').dataset.done") == "false"
        wait_for(browser, "document.getElementById('log-title').dataset.done === 'true'")
        out = browser.evaluate("document.getElementById('log-stdout').textContent")
        err = browser.evaluate("document.getElementById('log-stderr').textContent")
        assert out == f"out-1\nout-2\nout-3\n{INJECTION}\n"
        assert err == "err-1\nerr-2\nerr-3\n"
        assert browser.evaluate("window.pwned") is None
        assert browser.evaluate("document.querySelector('#log-stdout *')") is None
        wait_for(
            browser,
            "[...document.querySelectorAll('.exit-code')].some(c => c.textContent === 'exit 0')",
        )
        browser.screenshot(ARTIFACTS / "dashboard-commands.png")

        # Files: upload through the picker, see it listed, its content in the sandbox.
        click(browser, "#tab-files")
        wait_for(browser, "document.getElementById('files-path').textContent")
        with tempfile.TemporaryDirectory() as tmp:
            upload = Path(tmp) / "hello-dash.txt"
            upload.write_text("uploaded from the browser\n")
            doc = browser.send("DOM.getDocument")
            node = browser.send(
                "DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#file-picker"
            )
            browser.send("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(upload)])
            wait_for(
                browser, "document.querySelector('#file-rows tr[data-name=\"hello-dash.txt\"]')"
            )
            # And by drag-and-drop onto the drop zone, as a person would.
            dropped = Path(tmp) / "dropped.bin"
            dropped.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: progress has steps
            box = browser.evaluate(
                "(() => { const r = document.getElementById('dropzone').getBoundingClientRect();"
                " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
            )
            data = {"items": [], "files": [str(dropped)], "dragOperationsMask": 1}
            for kind in ("dragEnter", "dragOver", "drop"):
                browser.send("Input.dispatchDragEvent", type=kind, x=box[0], y=box[1], data=data)
            wait_for(browser, "document.querySelector('#file-rows tr[data-name=\"dropped.bin\"]')")
        assert sb.fs.download_file("hello-dash.txt") == b"uploaded from the browser\n"
        assert sb.fs.download_file("dropped.bin") == bytes(range(256)) * 4096
        assert browser.evaluate("document.getElementById('upload-progress').value") == 1
        browser.screenshot(ARTIFACTS / "dashboard-files.png")
        listed = "document.querySelector('#file-rows tr[data-name=\"hello-dash.txt\"]')"
        # Its download link serves its bytes (the session cookie authorises the GET).
        got = browser.evaluate(
            f"fetch({listed}.querySelector('a[download]').href).then(r => r.text())"
        )
        assert got == "uploaded from the browser\n"
        browser.evaluate(f"{listed}.querySelector('.file-delete').click()")
        wait_for(browser, f"!{listed}")
        assert "hello-dash.txt" not in [f.name for f in sb.fs.list_files(".")]

        # Interpreter contexts: one made from the page is listed, and is the sandbox's.
        click(browser, "#tab-contexts")
        click(browser, "#new-context")
        ctx = wait_for(browser, "document.querySelector('#contexts li code')?.textContent")
        assert ctx in [c.id for c in sb.code_interpreter.list_contexts()]

        # A preview link opens in a new tab (the test follows it in this one).
        start_app(sb)
        click(browser, "#tab-previews")
        set_value(browser, "#preview-port", str(PORT))
        browser.evaluate("document.getElementById('preview-form').requestSubmit()")
        link = wait_for(browser, "document.querySelector('a.preview-link')?.href")
        assert browser.evaluate("document.querySelector('a.preview-link').target") == "_blank"
        browser.navigate(link)
        assert "Hello from the sandbox" in browser.evaluate("document.body.innerText")

        # Stop and start from the list: the state changes on the page, with no reload.
        browser.navigate(server.url + "/")
        browser.evaluate("window.notReloaded = true")
        wait_for(browser, f"{row} && {row}.dataset.state === 'started'")
        browser.evaluate(f"{row}.querySelector('.act-stop').click()")
        wait_for(browser, f"{row} && {row}.dataset.state === 'stopped'", 60000)
        browser.evaluate(f"{row}.querySelector('.act-start').click()")
        wait_for(browser, f"{row} && {row}.dataset.state === 'started'", 60000)
        assert browser.evaluate("window.notReloaded") is True

        # Sign out: the page is the sign-in form again, and the API no longer answers.
        navigating(browser, "document.getElementById('signout').click()")
        assert browser.evaluate("!!document.getElementById('key')")
        status = browser.evaluate("fetch('/api/sandbox').then(r => r.status)")
        assert status == 401
    finally:
        other_daytona.delete(theirs)
        for sb in daytona.list():
            if sb.name == name:
                daytona.delete(sb)


@pytest.mark.timeout(900)  # the first image of a fresh machine builds its Debian base
def test_create_from_an_image_or_a_snapshot(
    browser: Browser, server: ServerProcess, daytona: Any
) -> None:
    """The create form's image and snapshot fields, each checked inside the sandbox made."""
    from daytona import CreateSnapshotParams, Image

    snap_name = f"dash-snap-{secrets.token_hex(3)}:1"
    image = Image.base("python:3.11-slim").run_commands("echo from-dash-snapshot > /etc/dash-snap")
    snap = daytona.snapshot.create(CreateSnapshotParams(name=snap_name, image=image), timeout=900)
    names = [f"dash-{kind}-{secrets.token_hex(3)}" for kind in ("snap", "image")]
    try:
        browser.navigate(server.url + "/")
        if browser.evaluate("!!document.getElementById('key')"):
            set_value(browser, "#key", server.key)
            navigating(browser, "document.querySelector('form.signin').submit()")
        # The key's snapshots are offered by name.
        options = "[...document.querySelectorAll('#new-snapshot option')].map(o => o.value)"
        wait_for(browser, f"{options}.includes({json.dumps(snap_name)})")
        # Both at once is refused on the page, naming why.
        set_value(browser, "#new-image", "python:3.11-slim")
        set_value(browser, "#new-snapshot", snap_name)
        click(browser, "#create")
        flash = "document.querySelector('.flash')?.textContent"
        assert "not both" in wait_for(browser, flash)
        browser.screenshot(ARTIFACTS / "dashboard-create-image.png")

        rows = "[...document.querySelectorAll('#sandbox-rows tr')]"
        made = {}
        for name, image_field, snapshot_field in (
            (names[0], "", snap_name),  # the snapshot alone
            (names[1], "python:3.11-slim", ""),  # the image alone
        ):
            set_value(browser, "#new-image", image_field)
            set_value(browser, "#new-snapshot", snapshot_field)
            set_value(browser, "#new-name", name)
            click(browser, "#create")
            row = f"{rows}.find(r => r.textContent.includes('{name}'))"
            wait_for(browser, f"{row} && {row}.dataset.state === 'started'", 600000)
            made[name] = daytona.get(browser.evaluate(f"{row}.dataset.id"))
        from_snap, from_image = made[names[0]], made[names[1]]
        assert from_snap.process.exec("cat /etc/dash-snap").result.strip() == "from-dash-snapshot"
        # The image's root, not the default one: its own Python 3.11 and pip, none of the
        # host's programs (a default sandbox sees the host's /usr, where chromium is).
        assert made_default_sees_chromium(daytona)
        code = "import sys; print(sys.version_info[:2])"
        assert from_image.process.code_run(code).result.strip() == "(3, 11)"
        r = from_image.process.exec("pip --version; test -e /etc/dash-snap || echo no-snap-file")
        assert "pip" in r.result and "no-snap-file" in r.result
        r = from_image.process.exec("test -e /usr/bin/chromium || echo own-root")
        assert r.result.strip() == "own-root"
    finally:
        for sb in daytona.list():
            if sb.name in names:
                daytona.delete(sb)
        daytona.snapshot.delete(snap)


def made_default_sees_chromium(daytona: Any) -> bool:
    """Whether a default sandbox has /usr/bin/chromium (the host's /usr, as this test's is)."""
    sb = daytona.create()
    try:
        return bool(sb.process.exec("test -e /usr/bin/chromium && echo yes").result.strip())
    finally:
        daytona.delete(sb)


def test_a_script_on_the_dashboards_origin_gets_no_csrf_token(
    browser: Browser, server: ServerProcess
) -> None:
    """A path-form preview shares this origin: what its script could try, tried from the
    same origin with a signed-in session. The page (which holds the CSRF token) comes to
    navigations only, refuses framing, and the API refuses the cookie without the token."""
    browser.navigate(server.url + "/")
    if browser.evaluate("!!document.getElementById('key')"):
        set_value(browser, "#key", server.key)
        navigating(browser, "document.querySelector('form.signin').submit()")
    token = browser.evaluate("document.querySelector('meta[name=csrf-token]').content")
    assert token  # the navigation itself is signed in and gets it

    fetched = browser.evaluate("""
fetch('/', {credentials: 'include'}).then(async r => [r.status, await r.text()])""")
    assert fetched[0] == 403 and "navigations only" in fetched[1], fetched
    assert token not in fetched[1]

    framed = browser.evaluate("""
new Promise(resolve => {
  const f = document.createElement('iframe');
  f.src = '/';
  f.onload = () => {
    let seen = null;
    try { seen = f.contentDocument && f.contentDocument.querySelector('meta[name=csrf-token]'); }
    catch (e) { seen = null; }
    resolve(seen ? seen.content : '');
  };
  document.body.appendChild(f);
})""")
    assert framed == ""  # refused by frame-ancestors 'none': no document to read

    # The cookie alone opens nothing: a read, a file download, a terminal WebSocket.
    api = browser.evaluate("""
fetch('/api/sandbox', {credentials: 'include'}).then(async r => [r.status, await r.text()])""")
    assert api[0] == 403 and "CSRF token" in api[1], api
    assert (
        browser.evaluate(f"""
fetch('/api/sandbox', {{headers: {{'X-CSRF-Token': {json.dumps(token)}}}}})
  .then(r => r.status)""")
        == 200
    )  # the page's own calls, with the token
    opened = browser.evaluate("""
new Promise(resolve => {
  const ws = new WebSocket(`ws://${location.host}/toolbox/any/process/pty/x/connect`);
  ws.onopen = () => resolve('open');
  ws.onerror = () => resolve('refused');
})""")
    assert opened == "refused"
