// Runs the raft core unit tests under real MicroPython (the npm webassembly
// build PyScript uses). Exit code 0 only if every test passed.
//   node tests/mpy/run_core_tests.mjs
//   node tests/mpy/run_core_tests.mjs --mpy DIR   # the core from DIR/raft/<m>.mpy
//     (bytecode as the server compiles it for MicroPython windows; no .py of it)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { loadMicroPython } = await import(
  join(ROOT, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"));

// The sans-IO core only: raft/browser/ and storage modules are not part of it.
export const CORE = ["__init__", "client", "cluster_key", "codec", "compaction", "config", "kv", "membership",
  "membership_node", "node", "peering", "progress", "proposals", "reads", "rng", "roles", "sessions", "sim"];
export const TESTS = ["test_rules", "test_clients", "test_codec", "test_snapshots", "test_membership", "test_regressions", "test_receive", "test_peering"];

export async function loadCore(extraFiles = {}, mpyDir = null) {
  let out = "";
  const mp = await loadMicroPython({
    stdout: (s) => { out += s + "\n"; process.stdout.write(s + "\n"); },
    stderr: (s) => process.stderr.write(s + "\n"),
  });
  mp.FS.mkdir("/raft");
  mp.FS.mkdir("/tests");
  for (const m of CORE) {
    if (mpyDir) mp.FS.writeFile(`/raft/${m}.mpy`, readFileSync(join(mpyDir, "raft", `${m}.mpy`)));
    else mp.FS.writeFile(`/raft/${m}.py`, readFileSync(join(ROOT, "raft", `${m}.py`)));
  }
  for (const [path, src] of Object.entries(extraFiles)) mp.FS.writeFile(path, src);
  mp.runPython("import sys\nsys.path.insert(0, '/tests')\nsys.path.insert(0, '/')");
  return { mp, output: () => out };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = {
    "/tests/helpers.py": readFileSync(join(ROOT, "tests/raft/helpers.py")),
    "/tests/mpy_runner.py": readFileSync(join(ROOT, "tests/mpy/mpy_runner.py")),
  };
  for (const t of TESTS) files[`/tests/${t}.py`] = readFileSync(join(ROOT, "tests/raft", `${t}.py`));
  const at = process.argv.indexOf("--mpy");
  const { mp, output } = await loadCore(files, at > 0 ? process.argv[at + 1] : null);
  try {
    mp.runPython(`import sys\nprint(sys.implementation)\nimport mpy_runner\n` +
      `_ok = mpy_runner.run(${JSON.stringify(TESTS)})\n` +
      `import raft.node\nprint("raft.node from", raft.node.__file__)`);
  } catch (e) {
    console.error("MicroPython error:", e);
    process.exit(2);
  }
  const m = output().match(/RESULT (\d+) (\d+)/);
  process.exit(m && m[2] === "0" && Number(m[1]) > 0 ? 0 : 1);
}
