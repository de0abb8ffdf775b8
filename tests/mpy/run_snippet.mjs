// Runs Python code in the MicroPython runtime PyScript uses (the npm
// webassembly build), with files put into its filesystem first:
//   node tests/mpy/run_snippet.mjs SPEC.json
// SPEC: {"files": {"/raft/node.mpy": "/local/path", ...}, "code": "import ..."}.
// Prints what the code prints; exit code 2 when it raised.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { loadMicroPython } = await import(
  join(ROOT, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"));
const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const mp = await loadMicroPython({
  stdout: (s) => process.stdout.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});
for (const [path, local] of Object.entries(spec.files || {})) {
  const parts = path.split("/").filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    try { mp.FS.mkdir("/" + parts.slice(0, i).join("/")); } catch (e) { /* exists */ }
  }
  mp.FS.writeFile(path, readFileSync(local));
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + spec.code);
} catch (e) {
  console.error("MicroPython error:", e.message || e);
  process.exit(2);
}
