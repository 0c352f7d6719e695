// A file browser over the agent's files API: list, upload (drag-and-drop or a picker,
// with progress), download, delete. Names are shown as text, whatever they contain.
import { bytes, call, el, flash, upload, withToken } from "./api.js";

export function renderFiles(root, sid) {
  const tb = `/toolbox/${encodeURIComponent(sid)}`;
  let dir = "";
  const where = el("code", { id: "files-path" });
  const rows = el("tbody", { id: "file-rows" });
  const progress = el("progress", { id: "upload-progress", max: 1, value: 0, hidden: true });
  const picker = el("input", { type: "file", id: "file-picker", multiple: true });
  const drop = el("div", { class: "dropzone", id: "dropzone" }, "Drop files here to upload, or ", picker, progress);
  root.append(el("p", {}, "Folder: ", where, " ", el("button", { onclick: () => go(parent(dir)) }, "up")),
    drop, el("table", { class: "files" }, rows));

  async function go(path) {
    try {
      const list = await call("GET", `${tb}/files?${new URLSearchParams({ path })}`);
      dir = path;
      where.textContent = dir;
      list.sort((a, b) => (b.isDir - a.isDir) || a.name.localeCompare(b.name));
      rows.replaceChildren(...list.map((f) => {
        const full = `${dir.replace(/\/$/, "")}/${f.name}`;
        const q = new URLSearchParams({ path: full });
        return el("tr", { dataset: { name: f.name } },
          el("td", { class: "file-name" }, f.isDir
            ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); go(full); } }, `${f.name}/`)
            : f.name),
          el("td", {}, f.isDir ? "" : bytes(f.size)),
          el("td", {}, f.mode),
          el("td", {}, f.isDir ? "" : el("a", { href: withToken(`${tb}/files/download?${q}`), download: f.name }, "download")),
          el("td", {}, el("button", { class: "file-delete", onclick: async () => {
            try { await call("DELETE", `${tb}/files?${new URLSearchParams({ path: full, recursive: f.isDir })}`); } catch (err) { flash(root, err); }
            go(dir);
          } }, "delete")));
      }));
    } catch (err) { flash(root, err); }
  }

  async function send(fileList) {
    const form = new FormData();
    [...fileList].forEach((file, i) => {
      form.append(`files[${i}].path`, `${dir.replace(/\/$/, "")}/${file.name}`);
      form.append(`files[${i}].file`, file, file.name);
    });
    progress.hidden = false;
    progress.value = 0;
    try {
      await upload(`${tb}/files/bulk-upload`, form, (p) => { progress.value = p; });
      progress.value = 1;
    } catch (err) { flash(root, err); }
    go(dir);
  }

  picker.addEventListener("change", () => picker.files.length && send(picker.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) send(e.dataTransfer.files);
  });

  call("GET", `${tb}/work-dir`).then((r) => go(r.dir)).catch((err) => flash(root, err));
  return () => {};
}

function parent(path) {
  const i = path.replace(/\/$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}
