// Runs benchmarks/core.py's bench under MicroPython 1.28 (wasm) in Node.js.
//   node benchmarks/core_mpy.mjs [entries] [repeats]   -> prints "BENCH <json>"
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCore } from "../tests/mpy/run_core_tests.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const entries = Number(process.argv[2] || 30000);
const repeats = Number(process.argv[3] || 3);
const { mp } = await loadCore({ "/bench_core.py": readFileSync(join(ROOT, "benchmarks/core.py")) });
mp.runPython(`import json, bench_core\nprint("BENCH " + json.dumps(bench_core.run_all(${entries}, ${repeats})))`);
