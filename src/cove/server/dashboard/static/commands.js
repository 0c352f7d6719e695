// Sessions and their commands: exit codes, a command runner, and a log followed live
// over the agent's follow WebSocket, stdout and stderr apart. The follower counts the
// bytes it has shown and resumes from there (`?offset=`) when its socket drops.
import { call, el, flash, wsUrl } from "./api.js";

const SESSION = "dashboard";
const STDOUT = 1;
const STDERR = 2;
const RETRY_MS = 1000;
const MAX_RETRIES = 30;

export function renderCommands(root, sid) {
  const base = `/toolbox/${encodeURIComponent(sid)}/process/session`;
  const input = el("input", { id: "command-input", placeholder: "a shell command", size: 50 });
  const list = el("div", { id: "sessions" });
  const out = el("pre", { class: "log", id: "log-stdout" });
  const err = el("pre", { class: "log stderr", id: "log-stderr" });
  const title = el("h3", { id: "log-title" }, "No command followed");
  let follower = null;
  let gone = false;

  const form = el("form", { id: "command-form" }, input, el("button", { type: "submit" }, "Run"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await ensureSession();
      const r = await call("POST", `${base}/${SESSION}/exec`, { command: input.value, runAsync: true });
      follow(SESSION, r.cmdId, input.value);
      refresh();
    } catch (error) { flash(root, error); }
  });
  root.append(form, list, title, el("div", { class: "logs" },
    el("div", {}, el("h4", {}, "stdout"), out), el("div", {}, el("h4", {}, "stderr"), err)));

  async function ensureSession() {
    const sessions = await call("GET", base);
    if (!sessions.some((s) => s.sessionId === SESSION)) await call("POST", base, { sessionId: SESSION });
  }

  async function refresh() {
    try {
      const sessions = await call("GET", base);
      if (gone) return;
      list.replaceChildren(...sessions.map((s) => el("div", { class: "session" },
        el("h4", {}, s.sessionId),
        el("table", { class: "commands" }, (s.commands || []).map((c) => el("tr", { dataset: { cmd: c.id } },
          el("td", { class: "command" }, el("code", {}, c.command)),
          el("td", { class: "exit-code" }, c.exitCode === null || c.exitCode === undefined ? "running" : `exit ${c.exitCode}`),
          el("td", {}, el("button", { class: "follow", onclick: () => follow(s.sessionId, c.id, c.command) }, "log"))))))));
    } catch (error) { flash(root, error); }
  }

  function follow(session, cmd, text) {
    if (follower) follower.stop();
    out.textContent = "";
    err.textContent = "";
    title.textContent = `Log of: ${text}`;
    let drops = 0;
    const resumed = el("span", { class: "resumed" });
    title.append(resumed);
    title.dataset.done = "false";
    title.dataset.drops = "0";
    follower = followLog(`${base}/${encodeURIComponent(session)}/command/${encodeURIComponent(cmd)}/logs`, {
      text: (stream, chunk) => (stream === STDERR ? err : out).append(chunk),
      end: () => { title.dataset.done = "true"; refresh(); },
      // The page says so: a followed log may have a gap in time, never in bytes.
      drop: (wasOpen) => {
        title.dataset.connected = "false";
        if (wasOpen) drops += 1; // a failed attempt to reconnect is not another loss
        resumed.textContent = " (connection lost: reconnecting…)";
        title.dataset.drops = String(drops);
      },
      open: () => {
        title.dataset.connected = "true";
        if (drops) resumed.textContent = ` (resumed after ${drops} lost connection${drops > 1 ? "s" : ""})`;
      },
    });
  }

  refresh();
  const timer = setInterval(refresh, 3000);
  return () => { gone = true; clearInterval(timer); if (follower) follower.stop(); };
}

// Frames start with three marker bytes (0x01 stdout, 0x02 stderr); `offset` counts
// payload bytes, which is where a reconnect resumes.
function followLog(path, on) {
  let offset = 0;
  let stopped = false;
  let ws = null;
  const decoders = { [STDOUT]: new TextDecoder(), [STDERR]: new TextDecoder() };
  let stream = STDOUT;
  let failures = 0;

  function connect() {
    let open = false;
    ws = new WebSocket(wsUrl(`${path}?follow=true&offset=${offset}`));
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      let data = typeof e.data === "string" ? new TextEncoder().encode(e.data) : new Uint8Array(e.data);
      if (data.length >= 3 && data[0] === data[1] && data[1] === data[2] && (data[0] === STDOUT || data[0] === STDERR)) {
        stream = data[0];
        data = data.subarray(3);
      }
      offset += data.length;
      on.text(stream, decoders[stream].decode(data, { stream: true }));
    };
    ws.onopen = () => { open = true; failures = 0; on.open(); };
    ws.onclose = (e) => {
      if (stopped) return;
      if (e.code === 1000) return on.end(); // the command ended and all its output came
      failures += 1; // refused outright (sandbox gone, signed out): give up after a while
      on.drop(open);
      if (failures <= MAX_RETRIES) setTimeout(connect, RETRY_MS); // resume where we were
      else on.text(STDERR, `\n[log connection lost: close code ${e.code}]\n`);
    };
  }
  connect();
  return { stop() { stopped = true; ws.close(); } };
}
