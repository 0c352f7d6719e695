// The sandbox list: filters, a create form, and rows kept current by polling.
import { ApiError, age, bytes, call, el, flash, pairs } from "./api.js";

const POLL_MS = 2000;
const METRICS_AT_MOST = 50; // live readings for the first rows only: one request each
const STATES = ["", "started", "starting", "stopped", "stopping", "error", "destroyed"];

export function renderList(root) {
  let timer = null;
  let gone = false;
  let painted = false;
  const readings = new Map(); // id -> last reading, so a new row does not start blank
  const shown = new Map(); // id -> its row element
  const labelFilter = el("input", { id: "filter-label", placeholder: "label: key=value" });
  const stateFilter = el("select", { id: "filter-state" },
    STATES.map((s) => el("option", { value: s }, s || "any state")));
  const rows = el("tbody", { id: "sandbox-rows" });
  const count = el("span", { id: "sandbox-count" });
  const table = el("table", { class: "sandboxes" },
    el("thead", {}, el("tr", {}, ["Sandbox", "State", "Labels", "CPU", "Memory", "Disk", "Age",
      "CPU now", "Memory now", ""].map((h) => el("th", {}, h)))),
    rows);
  root.append(
    el("section", { class: "toolbar" }, el("h1", {}, "Sandboxes ", count), labelFilter, stateFilter),
    createForm(root, () => refresh()),
    table,
  );
  labelFilter.addEventListener("change", () => refresh());
  stateFilter.addEventListener("change", () => refresh());

  async function refresh() {
    clearTimeout(timer);
    try {
      const q = new URLSearchParams();
      const labels = pairs(labelFilter.value);
      if (Object.keys(labels).length) q.set("labels", JSON.stringify(labels));
      if (stateFilter.value) q.append("states", stateFilter.value);
      const list = await call("GET", `/api/sandbox?${q}`);
      if (gone) return;
      if (count.textContent !== `(${list.total})`) count.textContent = `(${list.total})`;
      const items = list.items.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      const start = performance.now();
      update(items);
      if (!painted) {
        painted = true; // `make bench` reads this mark: the list's first paint
        requestAnimationFrame(() => performance.mark("cove-list-painted"));
      } else {
        // `make bench` reads these: what one poll costs the page, its frame's style
        // and layout included (the timeout runs once that frame is done).
        requestAnimationFrame(() => setTimeout(() => performance.measure("cove-list-update", { start })));
      }
      await liveMetrics(items.filter((sb) => sb.state === "started").slice(0, METRICS_AT_MOST));
    } catch (err) {
      flash(root, err);
    }
    if (!gone) timer = setTimeout(refresh, POLL_MS);
  }

  // The rows in place: a row that is still listed keeps its element, and only the
  // cells whose value changed are touched, so a poll leaves focus, a text selection
  // and the scroll position alone (and costs little when nothing changed).
  function update(items) {
    const listed = new Set(items.map((sb) => sb.id));
    for (const [id, tr] of shown) {
      if (!listed.has(id)) { tr.remove(); shown.delete(id); readings.delete(id); }
    }
    let next = rows.firstElementChild;
    for (const sb of items) {
      let tr = shown.get(sb.id);
      if (tr) refreshRow(tr, sb, root, refresh);
      else {
        tr = row(sb, root, refresh, readings.get(sb.id));
        shown.set(sb.id, tr);
      }
      if (tr === next) next = next.nextElementSibling; // already in its place: not moved
      else rows.insertBefore(tr, next);
    }
  }

  async function liveMetrics(started) {
    await Promise.all(started.map(async (sb) => {
      try {
        const m = await call("GET", `/toolbox/${encodeURIComponent(sb.id)}/system/metrics`);
        readings.set(sb.id, m);
        const tr = rows.querySelector(`tr[data-id="${CSS.escape(sb.id)}"]`);
        if (tr) showReading(tr, m);
      } catch { /* stopped meanwhile: the next poll shows it */ }
    }));
  }

  refresh();
  return () => { gone = true; clearTimeout(timer); };
}

function showReading(tr, m) {
  setText(tr.querySelector(".cpu-now"), `${m.cpuUsedPct.toFixed(1)}%`);
  setText(tr.querySelector(".mem-now"), bytes(m.memUsed));
}

// A cell's text, replaced only if it differs (a replaced text node drops a selection in it).
function setText(cell, value) {
  if (cell.textContent !== value) cell.textContent = value;
}

function row(sb, root, refresh, reading) {
  const id = encodeURIComponent(sb.id);
  const tr = el("tr", { dataset: { id: sb.id, state: sb.state } },
    el("td", {}, el("a", { href: `#/sandbox/${id}`, class: "sandbox-link" }, sb.name || sb.id)),
    el("td", { class: `state state-${sb.state}` }, sb.state),
    el("td", { class: "labels" }),
    el("td", { class: "cpu" }, `${sb.cpu}`),
    el("td", { class: "memory" }, `${sb.memory} GiB`),
    el("td", { class: "disk" }, `${sb.disk} GiB`),
    el("td", { class: "age", title: sb.createdAt }, age(sb.createdAt)),
    el("td", { class: "cpu-now" }, ""),
    el("td", { class: "mem-now" }, ""),
    el("td", { class: "actions" }),
  );
  tr.querySelector(".labels").append(...labelChips(sb.labels));
  tr.querySelector(".actions").append(...actions(sb, root, refresh));
  tr.labelsShown = labelsKey(sb.labels);
  if (reading && sb.state === "started") showReading(tr, reading);
  return tr;
}

// One listed row brought up to date, each cell only if what it shows changed.
function refreshRow(tr, sb, root, refresh) {
  const text = (selector, value) => setText(tr.querySelector(selector), value);
  text(".sandbox-link", sb.name || sb.id);
  if (tr.dataset.state !== sb.state) {
    tr.dataset.state = sb.state;
    const state = tr.querySelector(".state");
    state.className = `state state-${sb.state}`;
    state.textContent = sb.state;
    tr.querySelector(".actions").replaceChildren(...actions(sb, root, refresh));
    if (sb.state !== "started") { text(".cpu-now", ""); text(".mem-now", ""); }
  }
  if (tr.labelsShown !== labelsKey(sb.labels)) {
    tr.labelsShown = labelsKey(sb.labels);
    tr.querySelector(".labels").replaceChildren(...labelChips(sb.labels));
  }
  text(".cpu", `${sb.cpu}`);
  text(".memory", `${sb.memory} GiB`);
  text(".disk", `${sb.disk} GiB`);
  text(".age", age(sb.createdAt));
}

function labelsKey(labels) {
  return JSON.stringify(Object.entries(labels || {}));
}

function labelChips(labels) {
  return Object.entries(labels || {}).map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`));
}

function actions(sb, root, refresh) {
  const id = encodeURIComponent(sb.id);
  const act = (label, method, path) => el("button", {
    class: `act-${label}`,
    onclick: async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      try { await call(method, path); } catch (err) { flash(root, err); }
      button.disabled = false; // the row keeps its buttons while the state stays the same
      refresh();
    },
  }, label);
  return [
    sb.state === "stopped" || sb.state === "error" ? act("start", "POST", `/api/sandbox/${id}/start`) : null,
    sb.state === "started" ? act("stop", "POST", `/api/sandbox/${id}/stop`) : null,
    act("delete", "DELETE", `/api/sandbox/${id}`),
  ].filter(Boolean);
}

// A new sandbox from the default image, an image (built on create, as the SDK's
// `Image.base(name)` is) or one of the key's snapshots: one of the two at most.
function createForm(root, refresh) {
  const f = (name, attrs = {}) => el("input", { name, id: `new-${name}`, ...attrs });
  const language = el("select", { name: "language", id: "new-language" },
    ["python", "javascript", "typescript", "bash"].map((l) => el("option", { value: l }, l)));
  const snapshot = el("select", { name: "snapshot", id: "new-snapshot" }, el("option", { value: "" }, "none"));
  const env = el("textarea", { name: "env", id: "new-env", rows: 2, placeholder: "KEY=value per line" });
  const labels = el("textarea", { name: "labels", id: "new-labels", rows: 2, placeholder: "key=value per line" });
  const form = el("form", { class: "create", id: "create-form" },
    el("h2", {}, "New sandbox"),
    el("label", {}, "Name ", f("name", { placeholder: "optional" })),
    el("label", {}, "Language ", language),
    el("label", {}, "Image ", f("image", { placeholder: "default, or e.g. python:3.11-slim" })),
    el("label", {}, "Snapshot ", snapshot),
    el("label", {}, "CPU ", f("cpu", { type: "number", min: 1, max: 64, value: 1 })),
    el("label", {}, "Memory GiB ", f("memory", { type: "number", min: 1, max: 256, value: 1 })),
    el("label", {}, "Disk GiB ", f("disk", { type: "number", min: 1, max: 1024, value: 3 })),
    el("label", {}, "Env ", env),
    el("label", {}, "Labels ", labels),
    el("button", { type: "submit", id: "create" }, "Create"));
  const field = (name) => form.elements.namedItem(name).value;

  // The key's snapshots that can start a sandbox; listed again when the field is opened.
  async function loadSnapshots() {
    try {
      const page = await call("GET", "/api/snapshots?limit=200");
      const names = page.items.filter((s) => s.state === "active").map((s) => s.name).sort();
      const chosen = snapshot.value;
      const have = [...snapshot.options].slice(1).map((o) => o.value);
      if (JSON.stringify(have) !== JSON.stringify(names)) {
        snapshot.replaceChildren(el("option", { value: "" }, "none"),
          ...names.map((n) => el("option", { value: n }, n)));
        snapshot.value = names.includes(chosen) ? chosen : "";
      }
      snapshot.dataset.loaded = "true";
    } catch (err) { flash(root, err); }
  }
  snapshot.addEventListener("focus", loadSnapshots);
  loadSnapshots();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const body = {
        language: language.value,
        cpu: Number(field("cpu")), memory: Number(field("memory")), disk: Number(field("disk")),
        env: pairs(env.value), labels: pairs(labels.value),
      };
      const image = field("image").trim();
      if (image && snapshot.value) throw new ApiError("choose an image or a snapshot, not both");
      if (/\s/.test(image)) throw new ApiError(`"${image}" is not an image name (no spaces)`);
      if (field("name").trim()) body.name = field("name").trim();
      if (snapshot.value) body.snapshot = snapshot.value;
      if (image) body.buildInfo = { dockerfileContent: `FROM ${image}\n` };
      refresh(); // shows it "starting" (or building) if the create takes a while
      await call("POST", "/api/sandbox", body);
    } catch (err) {
      flash(root, err);
    } finally {
      button.disabled = false;
    }
    refresh();
  });
  return form;
}
