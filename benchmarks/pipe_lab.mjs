// benchmarks/pipe_lab.py under MicroPython in Node.js, for the raft/ of
// this checkout or of another (A/B):
//   node benchmarks/pipe_lab.mjs [root] [writes] [inflight] [batched]  -> "BENCH <json>"
// Environment: LAB_GC_THRESHOLD=bytes (gc.threshold; unset: MicroPython's own,
// 16 KiB, as a page without raft.browser.ffi.tune_gc has), LAB_HEAP_MB (the
// initial heap, default 136 like a PyScript page's), LAB_PROFILE=1 (per-node phase times, which the clock
// calls inflate).
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = process.argv[2] || HERE;
const writes = Number(process.argv[3] || 20000);
const inflight = Number(process.argv[4] || 256);
const batched = process.argv[5] === "batched" ? "True" : "False";
const fine = process.env.LAB_PROFILE ? "js.performance.now" : "None";
const gcThreshold = Number(process.env.LAB_GC_THRESHOLD || -1);
const heapMb = Number(process.env.LAB_HEAP_MB || 136);
const files = {};
for (const dir of ["raft", "raft/runtime"]) {
  for (const f of readdirSync(join(root, dir))) {
    if (f.endsWith(".py")) files[`/${dir}/${f}`] = readFileSync(join(root, dir, f));
  }
}
files["/pipe_lab.py"] = readFileSync(join(HERE, "benchmarks/pipe_lab.py"));
files["/benchmarks/__init__.py"] = "";
files["/benchmarks/tally.py"] = readFileSync(join(HERE, "benchmarks/tally.py"));
const receivers = {};
globalThis.labRegister = (name, fn) => { receivers[name] = fn; };
globalThis.labPost = (to, src, text) => setImmediate(() => receivers[to](src, text));
globalThis.labCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
globalThis.labWall = () => performance.now() / 1000;
globalThis.labDone = (text) => { console.log("BENCH " + text); };
const { loadMicroPython } = await import(
  join(HERE, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"));
const mp = await loadMicroPython({ heapsize: heapMb * 1024 * 1024, stdout: (s) => console.log(s), stderr: (s) => console.error(s) });
for (const d of ["/raft", "/raft/runtime", "/benchmarks"]) mp.FS.mkdir(d);
for (const [p, src] of Object.entries(files)) mp.FS.writeFile(p, src);
mp.runPython(`
import sys
sys.path.insert(0, '/')
import asyncio, json, js, gc
if ${gcThreshold} >= 0:
    gc.threshold(${gcThreshold})
import pipe_lab

def clock():
    return int(js.performance.now())

async def go():
    post = js.labPost
    out = await pipe_lab.main(lambda to, src, text: post(to, src, text), clock,
                              js.labCpu, js.labWall, ${writes}, ${inflight}, ${batched}, ${fine},
                              js.labRegister)
    js.labDone(json.dumps(out))

asyncio.create_task(go())
`);
