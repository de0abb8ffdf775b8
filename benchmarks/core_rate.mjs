// The core's own rate for the runner's ratio (python -m benchmarks): 3 nodes,
// JSON codec, in the runtime the pages use, in Node.js.
//   node benchmarks/core_rate.mjs mpy|py [entries]   -> prints "BENCH <json>"
// (MicroPython reads process.cpuUsage() as its CPU clock; Pyodide, time.process_time().)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const runtime = process.argv[2] || "mpy";
const entries = Number(process.argv[3] || 20000);
const code = `import json, bench_core\nprint("BENCH " + json.dumps(bench_core.run_all(${entries}, 1, ((3, True),))[0]))`;
const bench = readFileSync(join(ROOT, "benchmarks/core.py"));
if (runtime === "mpy") {
  const { loadCore } = await import("../tests/mpy/run_core_tests.mjs");
  const { mp } = await loadCore({ "/bench_core.py": bench });
  mp.runPython(code);
} else {
  const { CORE } = await import("../tests/mpy/run_core_tests.mjs");
  const { loadPyodide } = await import(join(ROOT, "node_modules/pyodide/pyodide.mjs"));
  const py = await loadPyodide({ indexURL: join(ROOT, "node_modules/pyodide") + "/",
                                 stdout: (s) => console.log(s), stderr: (s) => console.error(s) });
  py.FS.mkdir("/wraft");
  py.FS.mkdir("/wraft/raft");
  for (const m of CORE) py.FS.writeFile(`/wraft/raft/${m}.py`, readFileSync(join(ROOT, "raft", `${m}.py`)));
  py.FS.writeFile("/wraft/bench_core.py", bench);
  py.runPython("import sys\nsys.path.insert(0, '/wraft')\n" + code);
}
