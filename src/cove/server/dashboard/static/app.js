// The dashboard's router: `#/` is the sandbox list, `#/sandbox/ID` one sandbox.
import { renderList } from "./list.js";
import { renderSandbox } from "./sandbox.js";

const root = document.getElementById("app");
let leave = () => {};

function route() {
  leave(); // stop the previous view's polling, sockets and terminals
  root.replaceChildren();
  const m = location.hash.match(/^#\/sandbox\/([^/]+)$/);
  leave = m ? renderSandbox(root, decodeURIComponent(m[1])) : renderList(root);
}

window.addEventListener("hashchange", route);
route();
