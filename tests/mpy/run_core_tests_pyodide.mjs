// Runs the raft core unit tests under Pyodide (the npm package PyScript uses),
// in Node.js, with the same tiny runner as MicroPython. Exit 0 only if all pass.
//   node tests/mpy/run_core_tests_pyodide.mjs
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { loadPyodide } = await import(join(ROOT, "node_modules/pyodide/pyodide.mjs"));
const CORE = ["__init__", "client", "cluster_key", "codec", "compaction", "config", "kv", "membership", "membership_node",
  "node", "peering", "progress", "proposals", "reads", "rng", "roles", "sessions", "sim"];
const TESTS = ["test_rules", "test_clients", "test_codec", "test_snapshots", "test_membership",
  "test_regressions", "test_receive", "test_peering"];

let out = "";
const py = await loadPyodide({
  indexURL: join(ROOT, "node_modules/pyodide") + "/",
  stdout: (s) => { out += s + "\n"; console.log(s); },
  stderr: (s) => console.error(s),
});
py.FS.mkdir("/wraft");
py.FS.mkdir("/wraft/raft");
for (const m of CORE) py.FS.writeFile(`/wraft/raft/${m}.py`, readFileSync(join(ROOT, "raft", `${m}.py`)));
py.FS.writeFile("/wraft/helpers.py", readFileSync(join(ROOT, "tests/raft/helpers.py")));
for (const t of TESTS) py.FS.writeFile(`/wraft/${t}.py`, readFileSync(join(ROOT, "tests/raft", `${t}.py`)));
// sys.print_exception is MicroPython's; give the runner a CPython stand-in.
py.FS.writeFile("/wraft/mpy_runner.py", readFileSync(join(ROOT, "tests/mpy/mpy_runner.py"), "utf8")
  .replace("import sys", "import sys, traceback\nif not hasattr(sys, 'print_exception'):\n    sys.print_exception = lambda e: traceback.print_exception(e)"));
py.runPython(`import sys\nsys.path.insert(0, '/wraft')\nprint('pyodide', sys.version.split()[0])\nimport mpy_runner\nmpy_runner.run(${JSON.stringify(TESTS)})`);
const m = out.match(/RESULT (\d+) (\d+)/);
process.exit(m && m[2] === "0" && Number(m[1]) > 0 ? 0 : 1);
