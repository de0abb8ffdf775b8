// WRaft page loader: picks the Python runtime and starts PyScript offline.
//
// Pages write their Python in <script type="wraft-python"> (inline or src=...).
// This module turns each into <script type="mpy"> (MicroPython, the default) or
// <script type="py"> (Pyodide, with ?runtime=py), gives it the one shared
// config /pyscript.toml, then loads /pyscript/core.js with the `offline`
// attribute so PyScript takes the interpreter from /pyscript/<name>/ on our own
// server (never a CDN). Documented in raft/browser/TRANSPORT.md.
const RUNTIMES = { mpy: "mpy", micropython: "mpy", py: "py", pyodide: "py" };

function chooseRuntime() {
  const asked = new URLSearchParams(location.search).get("runtime");
  if (asked === null || asked === "") return "mpy";
  const type = RUNTIMES[asked.toLowerCase()];
  if (type) return type;
  // Bad input: say so clearly, keep going with the default.
  console.error(`wraft loader: unknown ?runtime=${asked} (use mpy or py); using mpy`);
  return "mpy";
}

const type = chooseRuntime();
document.documentElement.dataset.wraftRuntime = type;

for (const old of document.querySelectorAll('script[type="wraft-python"]')) {
  const script = document.createElement("script");
  for (const { name, value } of old.attributes) {
    if (name !== "type") script.setAttribute(name, value);
  }
  script.type = type;
  if (!script.hasAttribute("config")) script.setAttribute("config", "/pyscript.toml");
  if (!script.hasAttribute("src")) script.textContent = old.textContent;
  old.replaceWith(script);
}

const css = document.createElement("link");
css.rel = "stylesheet";
css.href = "/pyscript/core.css";
document.head.append(css);

// Tests and tools wait for this: every Python script of the page has run.
addEventListener("py:all-done", () => { document.documentElement.dataset.wraftDone = "1"; });

// `offline` makes PyScript use ./pyscript/<interpreter>/ relative to the page.
const core = document.createElement("script");
core.type = "module";
core.src = "/pyscript/core.js";
core.setAttribute("offline", "");
document.head.append(core);
