// The JSON API as the page calls it: the session cookie goes along by itself, the CSRF
// token from the page's <meta> on every request (reads too: a preview's page may share
// this origin, and the cookie alone must not let its script read anything). Output from sandboxes
// only ever reaches the page through `el` (text nodes), never as HTML.

const csrf = document.querySelector('meta[name="csrf-token"]').content;

export class ApiError extends Error {}

let unreachable = false;

export async function call(method, path, body) {
  const headers = { "X-CSRF-Token": csrf };
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    unreachable = true; // the server is down or restarting: said once, cleared when it answers
    throw new ApiError("cannot reach the server (retrying)", { cause: "network" });
  }
  if (unreachable) {
    unreachable = false;
    for (const box of document.querySelectorAll(".flash.network")) box.remove();
  }
  const text = await r.text();
  if (r.status === 401) location.reload(); // the session ended: back to sign-in
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try { message = JSON.parse(text).message || message; } catch { /* not JSON */ }
    throw new ApiError(message);
  }
  return text ? JSON.parse(text) : null;
}

// An upload with progress (fetch reports none for request bodies).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new ApiError(errorText(xhr))));
    xhr.onerror = () => reject(new ApiError("upload failed: network error"));
    xhr.send(form);
  });
}

function errorText(xhr) {
  try { return JSON.parse(xhr.responseText).message; } catch { return `${xhr.status}`; }
}

// Where a browser cannot set a header (a WebSocket, a download link) the token rides
// in the query as `csrf_token` (which the server's access log redacts).
export function withToken(path) {
  return `${path}${path.includes("?") ? "&" : "?"}csrf_token=${encodeURIComponent(csrf)}`;
}

export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${withToken(path)}`;
}

// A DOM element; strings among the children become text nodes (never parsed as HTML).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// "k=v" lines (or comma-separated) into an object; blank lines skipped.
export function pairs(text) {
  const out = {};
  for (const part of text.split(/[\n,]/)) {
    const t = part.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i < 1) throw new ApiError(`"${t}" is not KEY=VALUE`);
    out[t.slice(0, i).trim()] = t.slice(i + 1);
  }
  return out;
}

export function flash(root, err) {
  let box = root.querySelector(".flash");
  if (!box) {
    box = el("div", { class: "flash" });
    root.prepend(box);
  }
  box.classList.toggle("network", err.cause === "network");
  box.replaceChildren(el("p", { class: "error", role: "alert" }, String(err.message || err)));
}
