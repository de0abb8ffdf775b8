// WRaft page loader: picks the Python runtime before PyScript starts.
//
// Pages are standard PyScript: <script type="mpy" config="..."> plus the
// core.js module tag with the `offline` attribute (the interpreter comes from
// /pyscript/micropython/ or /pyscript/pyodide/ on our own server, never a
// CDN). Load this module BEFORE core.js: with ?runtime=py it turns each
// main-thread mpy script into a py one (Pyodide); ?runtime=mpy|micropython|
// pyodide are accepted too, anything else logs an error and keeps MicroPython.
const RUNTIMES = { mpy: "mpy", micropython: "mpy", py: "py", pyodide: "py" };

function chooseRuntime() {
  const asked = new URLSearchParams(location.search).get("runtime");
  if (asked === null || asked === "") return "mpy";
  const type = RUNTIMES[asked.toLowerCase()];
  if (type) return type;
  console.error(`wraft loader: unknown ?runtime=${asked} (use mpy or py); using mpy`);
  return "mpy";
}

const type = chooseRuntime();
document.documentElement.dataset.wraftRuntime = type;
if (type === "py") {
  for (const script of document.querySelectorAll('script[type="mpy"]')) script.type = "py";
}

// Tests and tools wait for this: every Python script of the page has run.
addEventListener("py:all-done", () => { document.documentElement.dataset.wraftDone = "1"; });
