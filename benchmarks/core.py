"""Core benchmark: committed entries per CPU second of the Raft core in the
simulator with zero network delay (3 and 5 nodes), messages per committed
entry and bytes per entry on the wire; under CPython and, through Node.js,
under MicroPython 1.28 (the build PyScript uses).

    .venv/bin/python -m benchmarks.core [--entries 100000] [--no-mpy]

Writes benchmarks/results/core.json. A figure, not a test: nothing asserts.
This module's bench() also runs under MicroPython (benchmarks/core_mpy.mjs).
"""
import gc
import time

from raft import Config, KVStateMachine
from raft.sim import Cluster


def _clock():
    """CPU seconds of this process (not wall time: the machine may be busy)."""
    if hasattr(time, "process_time"):
        return time.process_time          # CPython / Pyodide
    try:
        import js                         # MicroPython under Node.js
        usage = js.process.cpuUsage

        def node_cpu():
            u = usage()
            return (u.user + u.system) / 1e6
        node_cpu()
        return node_cpu
    except Exception:
        return lambda: time.ticks_ms() / 1000.0   # fallback: wall clock


def bench(n, total, wire=True, per_turn=1024):
    """Replicate `total` client proposals through an n-node cluster; the
    leader's driver proposes up to per_turn commands per event-loop turn."""
    cfg = Config(election_min_ms=10 ** 6, election_max_ms=2 * 10 ** 6,
                 heartbeat_ms=10 ** 5, max_uncommitted=4 * per_turn)
    c = Cluster(n, 1, cfg, delay=(0, 0), wire=wire, check=False,
                state_machine=KVStateMachine)
    c.run_until(lambda: c.stable_leader() is not None, 10 ** 7)
    leader = c.stable_leader()
    c.run_for(0)
    node = c.nodes[leader]
    nodes = [c.nodes[i] for i in c.ids]
    start = node.commit_index
    target = start + total
    m0, b0, e0 = c.msgs_sent, c.msg_bytes, c.entries_sent
    clock = _clock()
    t0 = clock()
    seq = 0
    while True:
        low = target
        for x in nodes:
            if x.applied_index < low:
                low = x.applied_index
        if low >= target:
            break
        k = total - seq
        room = cfg.max_uncommitted - (node.last_index() - node.commit_index)
        if k > room:
            k = room
        if k > per_turn:
            k = per_turn
        for _ in range(k):
            seq += 1
            node.propose("bench", seq, ["put", "k%d" % (seq % 64), seq])
        c._drain(leader)
        # Zero delay: deliver until quiet. Once every proposal is in, let
        # virtual time pass so the leader's commit notice reaches followers.
        c.run_for(0 if seq < total else 20)
    dt = clock() - t0
    done = node.commit_index - start
    msgs = c.msgs_sent - m0
    return {
        "nodes": n, "wire_codec": wire, "entries": done, "cpu_s": round(dt, 4),
        "entries_per_cpu_s": int(done / dt) if dt > 0 else None,
        "messages_per_entry": round(msgs / float(done), 4),
        "bytes_per_entry": round((c.msg_bytes - b0) / float(done), 2) if wire else None,
        "entries_per_append": round((c.entries_sent - e0) / float(max(1, c.msg_count.get("a", 1))), 1),
    }


def run_all(total, repeats=3, configs=((3, True), (3, False), (5, True), (5, False))):
    """Median of `repeats` runs for each (nodes, codec) configuration."""
    out = []
    for n, wire in configs:
        runs = []
        for _ in range(repeats):
            gc.collect()                  # start each run from a clean heap
            runs.append(bench(n, total, wire))
        runs.sort(key=lambda r: r["entries_per_cpu_s"])
        med = runs[len(runs) // 2]
        med["runs_entries_per_cpu_s"] = [r["entries_per_cpu_s"] for r in runs]
        out.append(med)
    return out


def _print(title, rows):
    print(title)
    print("  nodes  codec  entries/CPU-s  msgs/entry  bytes/entry  entries/append")
    for r in rows:
        print("  %5d  %5s  %13s  %10.3f  %11s  %14.1f" % (
            r["nodes"], "json" if r["wire_codec"] else "none", r["entries_per_cpu_s"],
            r["messages_per_entry"], r["bytes_per_entry"], r["entries_per_append"]))


def main():
    import argparse
    import json
    import os
    import platform
    import subprocess
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--mpy-entries", type=int, default=30000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-mpy", action="store_true")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = {"benchmark": "raft core in simulator, zero delay",
              "command": "python -m benchmarks.core --entries %d" % args.entries,
              "load_average_at_start": os.getloadavg(),
              "python": platform.python_implementation() + " " + platform.python_version(),
              "cpython": run_all(args.entries, args.repeats)}
    _print("CPython %s, %d entries, median of %d:" % (platform.python_version(), args.entries,
                                                      args.repeats), result["cpython"])
    # The logs grow without bound here (no compaction yet), and CPython's
    # cyclic GC rescans them; a driver may raise the gen-0 threshold.
    threshold = gc.get_threshold()
    gc.set_threshold(20000, 10, 10)
    result["cpython_gc_threshold_20000"] = run_all(args.entries, args.repeats,
                                                   ((3, True), (5, True)))
    gc.set_threshold(*threshold)
    _print("CPython, same, with gc.set_threshold(20000, 10, 10):",
           result["cpython_gc_threshold_20000"])
    if not args.no_mpy:
        proc = subprocess.run(["node", os.path.join(root, "benchmarks", "core_mpy.mjs"),
                               str(args.mpy_entries), str(args.repeats)],
                              capture_output=True, text=True, timeout=1800)
        line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
        if proc.returncode == 0 and line:
            result["micropython"] = json.loads(line[-1][6:])
            _print("MicroPython 1.28 (wasm, Node.js), %d entries, median of %d:" % (
                args.mpy_entries, args.repeats), result["micropython"])
        else:
            result["micropython_error"] = (proc.stdout + proc.stderr)[-2000:]
            print("MicroPython run failed:\n" + result["micropython_error"])
        cp = dict((r["nodes"], r) for r in result["cpython"] if r["wire_codec"])
        for r in result.get("micropython", []):
            if r["wire_codec"]:
                print("  ratio CPython/MicroPython, %d nodes with codec: %.1fx" % (
                    r["nodes"], cp[r["nodes"]]["entries_per_cpu_s"] / float(r["entries_per_cpu_s"])))
    os.makedirs(os.path.join(root, "benchmarks", "results"), exist_ok=True)
    path = os.path.join(root, "benchmarks", "results", "core.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print("wrote", path)


if __name__ == "__main__":
    main()
