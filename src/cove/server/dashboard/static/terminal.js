// Terminals: xterm.js over the agent's PTY WebSocket (`/process/pty/create-connect`),
// several tabs on one sandbox, each resized with the window through the PTY resize route.
import { Terminal } from "./vendor/xterm.mjs";
import { FitAddon } from "./vendor/addon-fit.mjs";
import { call, el, flash, wsUrl } from "./api.js";

export function renderTerminals(root, sid) {
  const tabs = el("div", { class: "term-tabs" });
  const panes = el("div", { class: "term-panes" });
  const opened = [];
  let n = 0;
  const add = el("button", { id: "new-terminal", onclick: () => open() }, "+ terminal");
  root.append(el("div", { class: "term-bar" }, tabs, add), panes);

  function show(t) {
    for (const o of opened) {
      o.pane.hidden = o !== t;
      o.tab.classList.toggle("active", o === t);
    }
    t.fit();
    t.term.focus();
  }

  function open() {
    n += 1;
    const pid = `dash-${Date.now().toString(36)}-${n}`;
    const pane = el("div", { class: "terminal", id: `terminal-${n}`, dataset: { pty: pid } });
    const tab = el("button", { class: "term-tab" }, `shell ${n}`);
    tabs.append(tab);
    panes.append(pane);
    const term = new Terminal({ cursorBlink: true, fontSize: 14, convertEol: false });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(pane);
    fit.fit();
    const path = `/toolbox/${encodeURIComponent(sid)}/process/pty`;
    const q = new URLSearchParams({ id: pid, cols: term.cols, rows: term.rows });
    const ws = new WebSocket(wsUrl(`${path}/create-connect?${q}`));
    ws.binaryType = "arraybuffer";
    const encoder = new TextEncoder();
    let connected = false;
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return term.write(new Uint8Array(e.data));
      let msg = null;
      try { msg = JSON.parse(e.data); } catch { /* plain text output */ }
      if (!msg || msg.type !== "control") return term.write(e.data);
      if (msg.status === "connected") {
        connected = true;
        pane.dataset.connected = "true";
      } else if (msg.status === "exited") {
        term.write(`\r\n[exited with code ${msg.exitCode}]\r\n`);
      } else if (msg.status === "error") {
        term.write(`\r\n[error: ${msg.error}]\r\n`);
      }
    };
    ws.onclose = () => { pane.dataset.closed = "true"; if (!connected) term.write("[could not connect]\r\n"); };
    term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(encoder.encode(d)));
    let last = `${term.cols}x${term.rows}`;
    const t = {
      pane, tab, term, ws,
      // Leaving the page ends its shells (a PTY outlives its socket otherwise).
      kill: () => call("DELETE", `${path}/${encodeURIComponent(pid)}`).catch(() => {}),
      fit() {
        if (pane.hidden) return;
        fit.fit();
        const size = `${term.cols}x${term.rows}`;
        if (size === last || !connected) return;
        last = size;
        call("POST", `${path}/${encodeURIComponent(pid)}/resize`, { cols: term.cols, rows: term.rows })
          .then((info) => { pane.dataset.cols = info.cols; }) // the size the PTY has now
          .catch((err) => flash(root, err));
      },
    };
    tab.addEventListener("click", () => show(t));
    opened.push(t);
    show(t);
  }

  const onResize = () => opened.forEach((t) => t.fit());
  window.addEventListener("resize", onResize);
  open();
  return () => {
    window.removeEventListener("resize", onResize);
    for (const t of opened) {
      t.ws.close();
      t.term.dispose();
      t.kill();
    }
  };
}
