// WRaft page loader: picks the Python runtime before PyScript starts.
//
// Pages are standard PyScript: <script type="mpy" config="..."> plus the
// core.js module tag with the `offline` attribute (the interpreter comes from
// /pyscript/micropython/ or /pyscript/pyodide/ on our own server, never a
// CDN). Load this module BEFORE core.js: with ?runtime=py it turns each
// main-thread mpy script into a py one (Pyodide); ?runtime=mpy|micropython|
// pyodide are accepted too, anything else logs an error and keeps MicroPython.
// Without ?runtime the page's own choice counts: <raft-node runtime="py">
// (a write-heavy app: Pyodide loads slower but batches faster, README
// Benchmarks). Module scripts run once the document is parsed, so the
// element is there to read.
const RUNTIMES = { mpy: "mpy", micropython: "mpy", py: "py", pyodide: "py" };

function chooseRuntime() {
  const query = new URLSearchParams(location.search).get("runtime");
  const attr = document.querySelector("raft-node")?.getAttribute("runtime") ?? null;
  for (const [asked, said] of [[query, (v) => `?runtime=${v}`],
                               [attr, (v) => `<raft-node runtime="${v}">`]]) {
    if (asked === null || asked === "") continue;
    const type = RUNTIMES[asked.toLowerCase()];
    if (type) return type;
    console.error(`wraft loader: unknown ${said(asked)} (use mpy or py); using mpy`);
    return "mpy";
  }
  return "mpy";
}

const type = chooseRuntime();
document.documentElement.dataset.wraftRuntime = type;
if (type === "py") {
  for (const script of document.querySelectorAll('script[type="mpy"]')) script.type = "py";
}

// A page with a bundle says so in its <head>: <meta name="wraft-bundle"
// content="todo"> for config="/pages/todo.toml", whose [files] unpack
// /bundle/todo.zip (the page's Python modules as .py: Pyodide's). MicroPython
// windows get the same modules precompiled to bytecode instead: config
// /pages/todo.mpy.toml names /bundle/todo.mpy.zip (the server makes both, and
// serves the .py archive there when it cannot compile: signaling/static.py).
const bundle = document.querySelector('meta[name="wraft-bundle"]')?.content ?? "";
const BUNDLE_FILES = [];
if (/^[A-Za-z0-9_-]+$/.test(bundle)) {
  const config = `/pages/${bundle}.toml`;
  const mpyConfig = `/pages/${bundle}.mpy.toml`;
  if (type === "mpy") {
    for (const script of document.querySelectorAll('script[type="mpy"][config]')) {
      if (script.getAttribute("config") === config) script.setAttribute("config", mpyConfig);
    }
  }
  BUNDLE_FILES.push(["preload", type === "mpy" ? mpyConfig : config],
                    ["preload", type === "mpy" ? `/bundle/${bundle}.mpy.zip` : `/bundle/${bundle}.zip`]);
} else if (bundle) {
  console.error(`wraft loader: bad <meta name="wraft-bundle" content="${bundle}"> (a page name)`);
}

// Without hints the browser fetches one thing after another: core.js, then the
// config, then the interpreter, then its wasm, then the page's Python. Ask for
// the interpreter's files, the config and the bundle now, beside core.js. (The
// runtime paths are where core.js's `offline` attribute looks.)
const RUNTIME_FILES = {
  mpy: [["modulepreload", "/pyscript/micropython/micropython.mjs"],
        ["preload", "/pyscript/micropython/micropython.wasm"]],
  py: [["modulepreload", "/pyscript/pyodide/pyodide.mjs"],
       ["preload", "/pyscript/pyodide/pyodide.asm.wasm"],
       ["preload", "/pyscript/pyodide/python_stdlib.zip"],
       ["preload", "/pyscript/pyodide/pyodide-lock.json"]],
};
for (const [rel, href] of [...RUNTIME_FILES[type], ...BUNDLE_FILES]) {
  const link = document.createElement("link");
  link.rel = rel;
  link.href = href;
  if (rel === "preload") {
    link.as = "fetch";  // the runtime fetch()es these
    link.crossOrigin = "anonymous";
  }
  document.head.append(link);
}

// Tests and tools wait for this: every Python script of the page has run.
addEventListener("py:all-done", () => { document.documentElement.dataset.wraftDone = "1"; });

// An author's page on `wraft serve` (wraft/site.py): its Python errors (the
// tracebacks PyScript shows in .py-error boxes) and its node's error (a bad
// <raft-node> attribute, ...) go to the server, which logs them and answers
// with a message naming the file and line; that message is shown above the
// traceback. Other servers answer 404 and the page stays as PyScript drew it.
const reported = new Set();

async function reportError(kind, text, box) {
  const key = kind + "\n" + text;
  if (reported.has(key)) return;
  reported.add(key);
  let message;
  try {
    const r = await fetch("/wraft/page-error", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: location.pathname, kind, text: text.slice(0, 8000) }),
    });
    if (!r.ok) return;
    ({ message } = await r.json());
  } catch (e) {
    return;  // no server to tell: PyScript's box is all there is
  }
  const note = document.createElement("div");
  note.className = "wraft-error";
  note.setAttribute("role", "alert");
  note.textContent = message;
  note.style.cssText = "border:1px solid #b00;background:#fee;color:#000;font-family:monospace;" +
    "white-space:pre-wrap;padding:8px;margin-top:8px;font-weight:bold";
  if (box) box.before(note); else document.body.append(note);
}

function watchErrors() {
  new MutationObserver((records) => {
    for (const rec of records) {
      for (const el of rec.addedNodes) {
        if (el.nodeType === 1 && el.classList.contains("py-error")) reportError("python", el.textContent, el);
      }
    }
  }).observe(document.body, { childList: true, subtree: true });
  const html = document.documentElement;
  const nodeError = () => {
    const text = html.getAttribute("data-raft-error");
    if (text) reportError("node", text, null);
  };
  new MutationObserver(nodeError).observe(html, { attributes: true, attributeFilter: ["data-raft-error"] });
  nodeError();
}
if (document.body) watchErrors(); else addEventListener("DOMContentLoaded", watchErrors);
