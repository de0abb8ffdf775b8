// benchmarks/edge.py in the runtime the pages use, in Node.js, for the
// raft/ of this checkout or of another (A/B):
//   node benchmarks/edge_rate.mjs mpy|py [root] [batch]   -> prints "BENCH <json>"
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = join(dirname(fileURLToPath(import.meta.url)), "..");
const runtime = process.argv[2] || "mpy";
const root = process.argv[3] || HERE;
const batch = Number(process.argv[4] || 64);
const code = `import json, bench_edge\nprint("BENCH " + json.dumps(bench_edge.run(300, ${batch})))`;
// raft/ and raft/runtime/ of `root` (the core, records, the driver), this checkout's benchmark
const files = {};
for (const dir of ["raft", "raft/runtime"]) {
  for (const f of readdirSync(join(root, dir))) {
    if (f.endsWith(".py")) files[`/${dir}/${f}`] = readFileSync(join(root, dir, f));
  }
}
files["/bench_edge.py"] = readFileSync(join(HERE, "benchmarks/edge.py"));
if (runtime === "mpy") {
  const { loadMicroPython } = await import(
    join(HERE, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"));
  const mp = await loadMicroPython({ stdout: (s) => console.log(s), stderr: (s) => console.error(s) });
  for (const d of ["/raft", "/raft/runtime"]) mp.FS.mkdir(d);
  for (const [p, src] of Object.entries(files)) mp.FS.writeFile(p, src);
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + code);
} else {
  const { loadPyodide } = await import(join(HERE, "node_modules/pyodide/pyodide.mjs"));
  const py = await loadPyodide({ indexURL: join(HERE, "node_modules/pyodide") + "/",
                                 stdout: (s) => console.log(s), stderr: (s) => console.error(s) });
  for (const d of ["/wraft", "/wraft/raft", "/wraft/raft/runtime"]) py.FS.mkdir(d);
  for (const [p, src] of Object.entries(files)) py.FS.writeFile("/wraft" + p, src);
  py.runPython("import sys\nsys.path.insert(0, '/wraft')\n" + code);
}
