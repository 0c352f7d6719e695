// One sandbox: its state and actions, and tabs for terminals, commands, files,
// interpreter contexts and preview links.
import { call, el, flash } from "./api.js";
import { renderCommands } from "./commands.js";
import { renderFiles } from "./files.js";
import { renderTerminals } from "./terminal.js";

const TABS = { terminal: renderTerminals, commands: renderCommands, files: renderFiles,
  contexts: renderContexts, previews: renderPreviews };

export function renderSandbox(root, sid) {
  const id = encodeURIComponent(sid);
  const head = el("section", { class: "sandbox-head" });
  const tabBar = el("nav", { class: "tabs" });
  const body = el("section", { class: "tab-body" });
  root.append(el("p", {}, el("a", { href: "#/" }, "← all sandboxes")), head, tabBar, body);
  let leaveTab = () => {};
  let gone = false;
  let timer = null;

  for (const name of Object.keys(TABS)) {
    tabBar.append(el("button", { id: `tab-${name}`, onclick: () => show(name) }, name));
  }
  function show(name) {
    leaveTab();
    body.replaceChildren();
    tabBar.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.id === `tab-${name}`));
    leaveTab = TABS[name](body, sid);
  }

  async function refresh() {
    try {
      const sb = await call("GET", `/api/sandbox/${id}`);
      if (gone) return;
      const act = (label, method, path) => el("button", { class: `act-${label}`, onclick: async () => {
        try { await call(method, path); } catch (err) { flash(root, err); }
        if (label === "delete") location.hash = "#/"; else refresh();
      } }, label);
      head.replaceChildren(...[
        el("h1", {}, sb.name || sb.id, " ", el("span", { class: `state state-${sb.state}`, id: "sandbox-state" }, sb.state)),
        el("p", {}, `${sb.cpu} CPU · ${sb.memory} GiB memory · ${sb.disk} GiB disk · id ${sb.id}`),
        el("p", { class: "labels" }, Object.entries(sb.labels || {}).map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`))),
        sb.errorReason ? el("p", { class: "error" }, sb.errorReason) : null,
        el("p", { class: "actions" },
          sb.state === "started" ? act("stop", "POST", `/api/sandbox/${id}/stop`) : act("start", "POST", `/api/sandbox/${id}/start`),
          act("delete", "DELETE", `/api/sandbox/${id}`)),
      ].filter(Boolean)); // replaceChildren would show a null as the text "null"
    } catch (err) { flash(root, err); }
    if (!gone) timer = setTimeout(refresh, 3000);
  }

  refresh();
  show("terminal");
  return () => { gone = true; clearTimeout(timer); leaveTab(); };
}

function renderContexts(root, sid) {
  const base = `/toolbox/${encodeURIComponent(sid)}/process/interpreter/context`;
  const list = el("ul", { id: "contexts" });
  const add = el("button", { id: "new-context", onclick: async () => {
    try { await call("POST", base, {}); } catch (err) { flash(root, err); }
    refresh();
  } }, "New Python context");
  root.append(add, list);
  async function refresh() {
    try {
      const r = await call("GET", base);
      list.replaceChildren(...r.contexts.map((c) => el("li", {}, el("code", {}, c.id), ` ${c.language} in ${c.cwd} `,
        el("button", { onclick: async () => {
          try { await call("DELETE", `${base}/${encodeURIComponent(c.id)}`); } catch (err) { flash(root, err); }
          refresh();
        } }, "delete"))));
      if (!r.contexts.length) list.append(el("li", {}, "No contexts besides the default one."));
    } catch (err) { flash(root, err); }
  }
  refresh();
  return () => {};
}

// A preview link carries its token once; the server trades it for a cookie of its own.
function renderPreviews(root, sid) {
  const port = el("input", { id: "preview-port", type: "number", min: 1, max: 65535, placeholder: "port" });
  const links = el("ul", { id: "preview-links" });
  const form = el("form", { id: "preview-form" }, "Open a sandbox port: ", port, el("button", { type: "submit" }, "Get link"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await call("GET", `/api/sandbox/${encodeURIComponent(sid)}/ports/${Number(port.value)}/preview-url`);
      const href = r.token ? `${r.url}/?token=${encodeURIComponent(r.token)}` : `${r.url}/`;
      links.prepend(el("li", {}, el("a", { href, target: "_blank", rel: "noopener noreferrer", class: "preview-link" }, `port ${port.value}: ${r.url}`)));
    } catch (err) { flash(root, err); }
  });
  root.append(form, links);
  return () => {};
}
