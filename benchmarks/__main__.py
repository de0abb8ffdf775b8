"""The benchmark runner: figures from three headless browser windows.

    python -m benchmarks [--quick] [--repeats N] [--duration S] [--inflight K]
                         [--runtime mpy|py] [--no-pyodide] [--profile|--no-profile]
                         [--compaction-writes N] [--browser chromium|firefox|mixed[,...]]

`--browser` picks the windows' browser: Debian's Chromium (default), Debian's
firefox-esr, or mixed (windows 0 and 1 Chromium, window 2 Firefox); a comma
list runs each in turn in one run and prints the same table for each, then
their ratios to the first.

Hermetic: runs inside scripts/in-netns (re-executes itself through it when
started outside). Starts `python -m signaling` on 127.0.0.1, opens the bench
page in three windows, lets the leader's window measure the raw data-channel
round-trip rate (the baseline), sequential writes (each awaited until
committed: the original's method), pipelined writes (K in flight) and batched
writes (bursts of K, app.propose_many); the same under Pyodide (one repeat,
unless --no-pyodide); then cold start -> first commit beside its baseline, a
bare page of the same runtime (tests/browser/pages/bare.html), and the
leader's window closed (or hung) -> next commit (benchmarks/browser_timings.py);
the core's own rate in the same runtime (benchmarks/core_rate.mjs) and a
leader's edge CPU per entry without a browser (benchmarks/edge_rate.mjs,
the raft/ of --root when given); then log
compaction in the KV app (benchmarks/compaction.py). Medians over --repeats
fresh clusters; every goal is also a ratio to a baseline measured in the same
run (this machine's speed swings 2-3x between runs).
Prints a table with each target and whether it is met, then where the time
goes (a separate profiled run, so timers do not touch the figures), and
writes benchmarks/results/latest.json and a self-contained HTML report
(latest.html: latency histograms, throughput over time, the cold-start
timeline per window). `--quick` takes about a minute.
A script that prints figures, never a test: nothing here asserts a speed.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "latest.json"
IN_NETNS = REPO / "scripts" / "in-netns"

# The election timeout the pages use (raft.Config defaults): a hung leader is
# noticed within it.
ELECTION_MAX_S = 3.0

# (key, label, target as text, rule(value, figures) -> met?)
TARGETS = {
    "seq_to_rtt_ratio": (">= 0.8", lambda v, f: v >= 0.8),
    "pipelined_writes_per_s": (">= 20000 (all 3 windows, mpy)", lambda v, f: v >= 20000),
    "pipelined_to_core_ratio": (">= 1.5", lambda v, f: v >= 1.5),
    "cold_start_to_bare_ratio": ("<= 1.5", lambda v, f: v <= 1.5),
    "cold_start_mpy_s": ("<= 1.0 (quiet machine)", lambda v, f: v <= 1.0),
    "failover_close_s": ("<= 0.5", lambda v, f: v <= 0.5),
    "failover_silent_s": ("<= %.1f (election timeout)" % ELECTION_MAX_S,
                          lambda v, f: v <= ELECTION_MAX_S),
}
CORE_RATE = REPO / "benchmarks" / "core_rate.mjs"
EDGE_RATE = REPO / "benchmarks" / "edge_rate.mjs"
BROWSERS = ("chromium", "firefox", "mixed")  # mixed: windows 0, 1 Chromium, 2 Firefox


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description="WRaft benchmark runner (headless Chromium).")
    ap.add_argument("--quick", action="store_true",
                    help="one short repeat of everything (under 60 s)")
    ap.add_argument("--repeats", type=int, help="fresh clusters per figure (default 3; quick 1)")
    ap.add_argument("--duration", type=float, help="seconds per bench mode (default 5; quick 1)")
    ap.add_argument("--inflight", type=int, default=256, help="pipelined writes in flight")
    ap.add_argument("--runtime", choices=["mpy", "py"], default="mpy",
                    help="runtime of the bench windows (cold start runs both)")
    ap.add_argument("--pyodide", dest="pyodide", action="store_true", default=None,
                    help="also bench and time Pyodide windows (default on, off with --quick: "
                         "three Pyodide windows take ~10-50 s to load on 2 cores)")
    ap.add_argument("--no-pyodide", dest="pyodide", action="store_false")
    ap.add_argument("--profile", dest="profile", action="store_true", default=None,
                    help="add a profiled run: where each window's time goes (default on, off with --quick)")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--compaction-writes", type=int, default=None,
                    help="log compaction figures (KV app): localStorage after this many "
                         "writes and catch_up_s of a window closed for 5000 writes "
                         "(default 100000; 0 skips, as --quick does; benchmarks/compaction.py)")
    ap.add_argument("--no-timings", dest="timings", action="store_false",
                    help="skip cold start and failover (bench page figures only)")
    ap.add_argument("--root", type=Path,
                    help="serve the pages and raft/ of another checkout (to compare a change "
                         "side by side with this one)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--browser", default="chromium",
                    help="chromium, firefox or mixed (2 Chromium + 1 Firefox window); a comma "
                         "list runs each in turn, side by side (default %(default)s)")
    a = ap.parse_args(argv)
    a.browsers = [b.strip() for b in a.browser.split(",")]
    if not a.browsers or any(b not in BROWSERS for b in a.browsers):
        ap.error("--browser %r: use %s, or a comma list of them" % (a.browser, "|".join(BROWSERS)))
    if a.repeats is None:
        a.repeats = 1 if a.quick else 3
    if a.duration is None:
        a.duration = 1.0 if a.quick else 5.0
    if a.profile is None:
        a.profile = not a.quick
    if a.pyodide is None:
        a.pyodide = not a.quick
    if a.compaction_writes is None:
        a.compaction_writes = 0 if a.quick else 100000
    if a.repeats < 1 or not 0 < a.duration <= 120 or not 1 <= a.inflight <= 4096:
        ap.error("need --repeats >= 1, 0 < --duration <= 120, 1 <= --inflight <= 4096")
    return a


def ensure_netns(argv):
    """Browsers and pages only inside the private namespace: re-exec through
    scripts/in-netns when started outside it."""
    if os.environ.get("WRAFT_IN_NETNS") == "1":
        return
    if not os.access(IN_NETNS, os.X_OK):
        sys.exit("benchmarks: %s is missing; cannot run hermetically" % IN_NETNS)
    print("benchmarks: re-running inside scripts/in-netns (private network namespace)",
          flush=True)
    os.execv(str(IN_NETNS), [str(IN_NETNS), sys.executable, "-m", "benchmarks", *argv])


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform()}


def collect(args, browser, server, log):
    """Every measurement; one that fails is logged and left out (its figure
    becomes null), the others still run."""
    from benchmarks.browser import bench_once, cold_start_breakdown
    from benchmarks.browser_timings import bare_load, one_run

    errors = []

    def attempt(what, fn):
        try:
            return fn()
        except Exception as e:
            errors.append("%s: %s" % (what, str(e).splitlines()[0] if str(e) else repr(e)))
            log("FAILED %s: %s" % (what, errors[-1]))
            return None

    def bench_runs(runtime, repeats):
        out = []
        for r in range(repeats):
            res = attempt("bench %s %d" % (runtime, r + 1), lambda: bench_once(
                browser, server, args.duration, args.inflight, runtime))
            if res is None:
                continue
            out.append(res)
            log("bench %s %d/%d: rtt %.0f/s, sequential %.0f writes/s (p50 %.2f ms), pipelined "
                "%.0f writes/s on all 3 windows (%.0f at the leader, window %d), batched %.0f "
                "writes/s"
                % (runtime, r + 1, repeats, res["rtt"]["per_s"], res["sequential"]["per_s"],
                   res["sequential"]["p50_ms"], res["pipelined"]["all_windows_per_s"],
                   res["pipelined"]["per_s"], res["leader_window"],
                   res.get("batched", {}).get("per_s", 0)))
        return out
    runs = bench_runs(args.runtime, args.repeats)
    other = "py" if args.runtime == "mpy" else "mpy"
    other_runs = bench_runs(other, 1) if args.pyodide or args.runtime == "py" else []
    cold = {"mpy": [], "py": []}
    bare = {"mpy": [], "py": []}
    failover = {"mpy": [], "py": []}
    silent = {"mpy": [], "py": []}
    runtimes = ["mpy"] + (["py"] if args.pyodide else [])
    if not args.timings:
        runtimes = []
    for rt in runtimes:
        n = args.repeats if rt == "mpy" else max(1, args.repeats - 2)
        for r in range(n):
            # the baseline right before each cold start: the machine drifts
            b = attempt("bare page %s %d" % (rt, r + 1), lambda: bare_load(browser, server, rt))
            if b is not None:
                bare[rt].append(round(b, 3))
            for failure, into in (("close", failover), ("silent", silent)):
                got = attempt("timings %s %s %d" % (rt, failure, r + 1),
                              lambda: one_run(browser, server, r, rt, failure))
                if got is None:
                    continue
                first, fail = got
                cold[rt].append(round(first, 3))
                into[rt].append(round(fail, 3))
                log("timings %s %d/%d: 3 bare pages loaded %s s; open 3 windows -> first commit "
                    "%.2f s; leader %s -> next commit %.2f s"
                    % (rt, r + 1, n, "-" if b is None else "%.2f" % b, first,
                       "closed" if failure == "close" else "hung", fail))
    core, edge = {}, {}
    for rt in (["mpy", "py"] if args.pyodide or args.runtime == "py" else ["mpy"]):
        got = attempt("core rate %s" % rt, lambda: core_rate(rt, 5000 if args.quick else 20000))
        if got is not None:
            core[rt] = got
            log("core in the simulator (%s, 3 nodes, Node.js): %d entries/CPU-s" % (rt, got))
        got = attempt("edge cost %s" % rt, lambda: edge_cost(rt, args.root))
        if got is not None:
            edge[rt] = got
            log("a leader's edge, no browser (%s, send to 2 + persist, batches of 64): %.1f us "
                "of CPU per entry" % (rt, got))
    breakdown = None
    if args.timings:
        breakdown = attempt("cold start breakdown", lambda: cold_start_breakdown(
            browser, server, "mpy"))
        if breakdown is not None:
            log("cold start (mpy) breakdown: %s" % breakdown)
    profiled = None
    if args.profile:
        profiled = attempt("profiled bench", lambda: bench_once(
            browser, server, args.duration, args.inflight, args.runtime, profile=True))
        if profiled is not None:
            log("profiled run done (its figures are not used above: timers slow it)")
    timings = {"cold": cold, "bare": bare, "failover": failover, "silent": silent, "edge": edge}
    return runs, other_runs, timings, core, profiled, breakdown, errors


def core_rate(runtime, entries):
    """Entries per CPU second of the core in raft/sim.py, 3 nodes, JSON codec,
    in `runtime` under Node.js (the same build the pages load)."""
    proc = subprocess.run(["node", str(CORE_RATE), runtime, str(entries)], capture_output=True,
                          text=True, timeout=600)
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError((proc.stdout + proc.stderr)[-500:])
    return json.loads(line[-1][6:])["entries_per_cpu_s"]


def edge_cost(runtime, root=None):
    """CPU microseconds per entry of a leader's edge without a browser
    (benchmarks/edge.py: the driver's send of a Ready's AppendEntries to two
    followers and its persist), in `runtime` under Node.js, with the raft/
    of `root` (--root) or of this checkout."""
    proc = subprocess.run(["node", str(EDGE_RATE), runtime, str((root or REPO).resolve()), "64"],
                          capture_output=True, text=True, timeout=600)
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError((proc.stdout + proc.stderr)[-500:])
    return json.loads(line[-1][6:])["us_per_entry"]


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def bench_figures(runs):
    """Medians of the bench page's figures over fresh clusters of one runtime."""
    seq = [r["sequential"] for r in runs]
    pip = [r["pipelined"] for r in runs]
    bat = [r["batched"] for r in runs if r.get("batched")]
    f = {
        "rtt_baseline_per_s": median([r["rtt"]["per_s"] for r in runs]),
        "sequential_writes_per_s": median([s["per_s"] for s in seq]),
        "pipelined_writes_per_s": median([p["all_windows_per_s"] for p in pip]),
        "batched_writes_per_s": median([b["per_s"] for b in bat]),
        # the ratio of each run, then the median: both halves from one cluster
        "seq_to_rtt_ratio": median([ratio(r["sequential"]["per_s"], r["rtt"]["per_s"])
                                    for r in runs]),
        # the floor (benchmarks/js_floor.py): plain JS between the same windows
        "js_rtt_per_s": median([floor_of(r, "js_rtt_per_s") for r in runs]),
        "js_write_rtt_per_s": median([floor_of(r, "js_write_rtt_per_s") for r in runs]),
        "seq_to_floor_ratio": median([ratio(r["sequential"]["per_s"],
                                            floor_of(r, "js_write_rtt_per_s")) for r in runs]),
        "rtt_to_js_rtt_ratio": median([ratio(r["rtt"]["per_s"], floor_of(r, "js_rtt_per_s"))
                                       for r in runs]),
    }
    return f


def floor_of(run, key):
    return (run.get("floor") or {}).get(key)


def summarize(args, runs, cold, failover, profiled, browser, label, other_runs=(), core=None,
               bare=None, silent=None):
    seq = [r["sequential"] for r in runs]
    pip = [r["pipelined"] for r in runs]
    core = core or {}
    bare = bare or {"mpy": [], "py": []}
    silent = silent or {"mpy": [], "py": []}
    f = {
        "runtime": args.runtime,
        "rtt_baseline_per_s": median([r["rtt"]["per_s"] for r in runs]),
        "rtt_p50_ms": median([r["rtt"]["p50_ms"] for r in runs]),
        "sequential_writes_per_s": median([s["per_s"] for s in seq]),
        "commit_latency_p50_ms": median([s["p50_ms"] for s in seq]),
        "commit_latency_p99_ms": median([s["p99_ms"] for s in seq]),
        "sequential_to_first_ack_p50_ms": median([s.get("to_first_ack_p50_ms") for s in seq]),
        "sequential_after_ack_p50_ms": median([s.get("after_ack_p50_ms") for s in seq]),
        "pipelined_writes_per_s": median([p["all_windows_per_s"] for p in pip]),
        "pipelined_leader_writes_per_s": median([p["per_s"] for p in pip]),
        "pipelined_latency_p50_ms": median([p["p50_ms"] for p in pip]),
        "pipelined_latency_p99_ms": median([p["p99_ms"] for p in pip]),
        "pipelined_inflight": args.inflight,
        "cold_start_first_commit_s": {rt: median(v) for rt, v in cold.items() if v},
        "bare_page_load_s": {rt: median(v) for rt, v in bare.items() if v},
        "failover_s": median(failover["mpy"]),
        "failover_py_s": median(failover["py"]),
        "failover_close_s": median(failover["mpy"]),
        "failover_silent_s": median(silent["mpy"]),
        "failover_silent_py_s": median(silent["py"]),
        "core_entries_per_cpu_s": core,
        "localstorage_bytes_after": max(runs[-1]["storage_bytes"]),
        "localstorage_writes": max(runs[-1]["counts"]),
        "browser": browser,
        "browsers": label,
        "machine": machine(),
        "options": {"quick": args.quick, "repeats": args.repeats, "duration_s": args.duration,
                    "inflight": args.inflight, "root": str(args.root) if args.root else None},
        "runs": {"bench": runs, "cold_start_s": cold, "failover_s": failover,
                 "failover_silent_s": silent, "bare_page_load_s": bare},
        "profile": profiled,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
    }
    mine = bench_figures(runs)
    f["batched_writes_per_s"] = mine["batched_writes_per_s"]
    for key in ("seq_to_rtt_ratio", "js_rtt_per_s", "js_write_rtt_per_s", "seq_to_floor_ratio",
                "rtt_to_js_rtt_ratio"):
        f[key] = mine[key]
    f["pipelined_to_core_ratio"] = ratio(f["pipelined_writes_per_s"], core.get(args.runtime))
    f["batched_to_core_ratio"] = ratio(f["batched_writes_per_s"], core.get(args.runtime))
    rt_cold = f["cold_start_first_commit_s"].get("mpy")
    f["cold_start_to_bare_ratio"] = ratio(rt_cold, f["bare_page_load_s"].get("mpy"))
    if other_runs:  # the other runtime, side by side (Pyodide beside MicroPython)
        other = "py" if args.runtime == "mpy" else "mpy"
        o = bench_figures(other_runs)
        o["pipelined_to_core_ratio"] = ratio(o["pipelined_writes_per_s"], core.get(other))
        o["cold_start_to_bare_ratio"] = ratio(f["cold_start_first_commit_s"].get(other),
                                              f["bare_page_load_s"].get(other))
        f["other_runtime"] = dict(o, runtime=other)
        f["runs"]["bench_" + other] = list(other_runs)
    checks = {"seq_to_rtt_ratio": f["seq_to_rtt_ratio"],
              "pipelined_writes_per_s": f["pipelined_writes_per_s"],
              "pipelined_to_core_ratio": f["pipelined_to_core_ratio"],
              "cold_start_to_bare_ratio": f["cold_start_to_bare_ratio"],
              "cold_start_mpy_s": rt_cold,
              "failover_close_s": f["failover_close_s"],
              "failover_silent_s": f["failover_silent_s"]}
    f["targets"] = {}
    for key, (text, rule) in TARGETS.items():
        v = checks[key]
        met = None
        if v is not None and not (key.startswith("pipelined") and args.runtime != "mpy"):
            met = bool(rule(v, f))
        f["targets"][key] = {"value": v, "target": text, "met": met}
    return f


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return "{:,.0f}{}".format(v, unit)
    if isinstance(v, float):
        return "{:.2f}{}".format(v, unit)
    return "{}{}".format(v, unit)


def print_table(f):
    t = f["targets"]

    def target(key):
        return (t[key]["target"], t[key]["met"]) if key in t else ("", "")
    o = f.get("other_runtime") or {}
    core = f.get("core_entries_per_cpu_s") or {}
    rows = [
        ("data-channel round trips (baseline)", fmt(f["rtt_baseline_per_s"], "/s"), "", ""),
        ("sequential writes (each awaited)", fmt(f["sequential_writes_per_s"], "/s"), "", ""),
        ("  sequential / round trips, same cluster", fmt(f["seq_to_rtt_ratio"], "x"))
        + target("seq_to_rtt_ratio"),
        ("  commit latency p50 / p99", "%s / %s ms" % (fmt(f["commit_latency_p50_ms"]),
                                                      fmt(f["commit_latency_p99_ms"])), "", ""),
        ("  propose -> first ack / ack -> done p50", "%s / %s ms" % (
            fmt(f["sequential_to_first_ack_p50_ms"]), fmt(f["sequential_after_ack_p50_ms"])), "", ""),
        ("  floor, plain JS, same windows: round trips", fmt(f.get("js_rtt_per_s"), "/s"), "", ""),
        ("  ... with a localStorage write on each side", fmt(f.get("js_write_rtt_per_s"), "/s"),
         "", ""),
        ("  sequential / that floor; rtt / JS rtt", "%s; %s" % (
            fmt(f.get("seq_to_floor_ratio"), "x"), fmt(f.get("rtt_to_js_rtt_ratio"), "x")), "", ""),
        ("pipelined writes, K=%d, on all 3 windows" % f["pipelined_inflight"],
         fmt(f["pipelined_writes_per_s"], "/s")) + target("pipelined_writes_per_s"),
        ("  at the leader; latency p50 / p99", "%s/s; %s / %s ms" % (
            fmt(f["pipelined_leader_writes_per_s"]), fmt(f["pipelined_latency_p50_ms"]),
            fmt(f["pipelined_latency_p99_ms"])), "", ""),
        ("  core alone in the simulator, same runtime", fmt(core.get(f["runtime"]), "/CPU-s"),
         "", ""),
        ("  pipelined / core", fmt(f["pipelined_to_core_ratio"], "x"))
        + target("pipelined_to_core_ratio"),
        ("batched writes (propose_many, bursts of K)", fmt(f["batched_writes_per_s"], "/s"), "", ""),
        ("  batched / core", fmt(f.get("batched_to_core_ratio"), "x"), "", ""),
    ]
    for rt, v in sorted(f["cold_start_first_commit_s"].items()):
        rows.append(("cold start -> first commit (%s)" % rt, fmt(v, " s"))
                    + (target("cold_start_mpy_s") if rt == "mpy" else ("", "")))
        rows.append(("  3 bare %s pages loaded (baseline)" % rt,
                     fmt(f["bare_page_load_s"].get(rt), " s"), "", ""))
        r = f["cold_start_to_bare_ratio"] if rt == "mpy" else o.get("cold_start_to_bare_ratio")
        rows.append(("  cold start / bare (%s)" % rt, fmt(r, "x"))
                    + (target("cold_start_to_bare_ratio") if rt == "mpy" else ("", "")))
    rows.append(("failover: leader window closed -> next commit", fmt(f["failover_close_s"], " s"))
                + target("failover_close_s"))
    rows.append(("failover: leader hung -> next commit", fmt(f["failover_silent_s"], " s"))
                + target("failover_silent_s"))
    if o:
        rows.append(("%s, side by side: round trips / sequential" % o["runtime"], "%s / %s" % (
            fmt(o["rtt_baseline_per_s"], "/s"), fmt(o["sequential_writes_per_s"], "/s")), "", ""))
        rows.append(("  seq/rtt; pipelined; batched", "%s; %s; %s" % (
            fmt(o["seq_to_rtt_ratio"], "x"), fmt(o["pipelined_writes_per_s"], "/s"),
            fmt(o["batched_writes_per_s"], "/s")), "", ""))
        rows.append(("  core alone; pipelined / core", "%s; %s" % (
            fmt(core.get(o["runtime"]), "/CPU-s"), fmt(o["pipelined_to_core_ratio"], "x")), "", ""))
    rows.append(("localStorage after %s writes" % f["localstorage_writes"],
                 fmt(f["localstorage_bytes_after"], " B"), "", ""))
    w = max(len(r[0]) for r in rows)
    print()
    print("WRaft benchmarks: runtime %s, %s, %s cores, %s repeat(s) of %ss"
          % (f["runtime"], f["browsers"], f["machine"]["cores"],
             f["options"]["repeats"], f["options"]["duration_s"]))
    print("load average during the run: %.1f (on %s cores: other work on the machine skews "
          "every figure; the ratios are taken inside this run)"
          % (f["load_average"][0], f["machine"]["cores"]))
    print("%-*s  %-22s %-30s %s" % (w, "measure", "median", "target", "met?"))
    print("-" * (w + 62))
    for name, value, target_text, met in rows:
        mark = {True: "yes", False: "NO", None: "n/a", "": ""}[met]
        print("%-*s  %-22s %-30s %s" % (w, name, value, target_text, mark))


def print_profile(p):
    """Where each window's main thread spent the measured phases."""
    if not p:
        return
    print()
    print("Where the time goes (profiled run; ms of main-thread time per phase, "
          "nested: drain includes persist/send/advance/on_change)")
    labels = ["drain", "persist", "send", "transport_send", "advance", "on_change", "step",
              "ready", "propose", "tick"]
    print("%-36s %8s %s" % ("window / phase", "wall ms", " ".join("%9s" % x[:9] for x in labels)))

    def row(name, prof):
        ms = prof["ms"]
        print("%-36s %8.0f %s" % (name, prof["wall_ms"],
                                  " ".join("%9.0f" % ms.get(x, 0) for x in labels)))
    lead = p["leader_window"]
    for mode in ("rtt", "sequential", "pipelined"):
        if p.get(mode, {}).get("profile"):
            extra = "%d writes" % p[mode]["count"] if mode != "rtt" else "%d trips" % p[mode]["count"]
            row("leader %d %s (%s)" % (lead, mode, extra), p[mode]["profile"])
    for w, prof in sorted((p.get("follower_profiles") or {}).items()):
        if prof:
            row("follower %s (all 3 phases)" % w, prof)
    for mode in ("sequential", "pipelined"):
        prof = p.get(mode, {}).get("profile")
        n = p.get(mode, {}).get("count")
        if prof and n:
            ms, calls = prof["ms"], prof["calls"]
            sends = calls.get("transport_send", 0)
            print("leader %s, per write: %.0f us in drain (persist %.0f, send %.0f, on_change %.0f), "
                  "%.2f data-channel sends at %.0f us each, %.0f us outside drain"
                  % (mode, 1000 * ms["drain"] / n, 1000 * ms["persist"] / n, 1000 * ms["send"] / n,
                     1000 * ms["on_change"] / n, sends / n,
                     1000 * ms["transport_send"] / sends if sends else 0,
                     1000 * (prof["wall_ms"] - ms["drain"]) / n))


def print_native(p):
    """Chromium's own send/setItem calls during sequential writes (profiled run)."""
    nat = (p or {}).get("native_sequential")
    if not nat or not nat.get("writes"):
        return
    n = nat["writes"]
    print("native calls per sequential write (%d writes; wall time of each call, Raft's own "
          "included):" % n)
    for w, costs in sorted(nat["windows"].items()):
        role = "leader" if w == str(nat["leader_window"]) else "follower"
        print("  %-8s %s: %s" % (role, w, ", ".join(
            "%s %.2f/write at %s us" % (k, c[0] / n, fmt(c[1])) for k, c in sorted(costs.items()))))


def measure(args, browser, server, log):
    """Every measurement for one choice of browsers (the raw parts report() prints)."""
    t0 = time.monotonic()
    load_at_start = os.getloadavg()
    runs, other_runs, timings, core, profiled, breakdown, errors = collect(
        args, browser, server, log)
    compaction = None
    if args.compaction_writes:
        from benchmarks.compaction import collect_compaction
        compaction = collect_compaction(browser, server, args.compaction_writes, 5000, log, errors)
    return (runs, other_runs, timings, core, profiled, breakdown, errors, compaction,
            load_at_start, round(time.monotonic() - t0, 1))


def report(args, name, label, measured):
    """Prints one browser choice's table and notes; returns its figures."""
    (runs, other_runs, timings, core, profiled, breakdown, errors, compaction, load_at_start,
     elapsed) = measured
    if not runs:
        print("benchmarks (%s): no bench run succeeded:\n  %s" % (name, "\n  ".join(errors)),
              file=sys.stderr)
        return None
    f = summarize(args, runs, timings["cold"], timings["failover"], profiled, name, label,
                  other_runs, core, timings["bare"], timings["silent"])
    f["edge_us_per_entry"] = timings.get("edge") or {}
    f["errors"] = errors
    f.update(compaction or {})
    f["cold_start_breakdown_mpy_s"] = breakdown
    f["load_average_at_start"] = load_at_start
    f["load_average"] = os.getloadavg()
    f["elapsed_s"] = elapsed
    print_table(f)
    if f["edge_us_per_entry"]:
        print("\na leader's edge without a browser (benchmarks/edge.py: send to 2 followers + "
              "persist, batches of 64), CPU per entry: %s" % ", ".join(
                  "%s %.1f us" % kv for kv in sorted(f["edge_us_per_entry"].items())))
    if breakdown:
        print("\ncold start (mpy), seconds from opening 3 fresh windows: Python running in all "
              "%(python_ready_s)s, all data channels up %(channels_up_s)s, leader elected "
              "%(leader_s)s, first write committed %(first_commit_s)s" % breakdown)
        print("  from the first window's navigation start (the harness's page creation left out; "
              "navigations %s s apart): first commit %s s"
              % (breakdown.get("navigation_spread_s"), breakdown.get("first_commit_from_navigation_s")))
        print("  inside each window (s from its navigation start): runtime up and our script "
              "starting %s; node started %s" % (breakdown.get("window_runtime_up_s"),
                                                breakdown.get("window_script_done_s")))
    if compaction:
        print("\nlog compaction (KV app, 50 keys): localStorage %s chars (max over windows) after "
              "%d writes; a window closed for %d writes catches up in %.2f s (reopen included)"
              % (compaction["compaction_localstorage_bytes_after"], compaction["compaction_writes"],
                 compaction["catch_up_lag_writes"], compaction["catch_up_s"]))
    print_profile(profiled)
    print_native(profiled)
    for e in errors:
        print("not measured: " + e)
    return f


RATIO_KEYS = ("rtt_baseline_per_s", "sequential_writes_per_s", "pipelined_writes_per_s",
              "failover_s")


def print_ratios(by_browser):
    """Each later browser choice against the first, measured in this one run."""
    names = [n for n in by_browser if by_browser[n]]
    if len(names) < 2:
        return
    base = by_browser[names[0]]
    print("\nside by side in this run (ratio to %s):" % names[0])
    for name in names[1:]:
        f = by_browser[name]
        parts = ["%s %s" % (k.replace("_per_s", "").replace("_", " "),
                            "%.2fx" % (f[k] / base[k]) if f.get(k) and base.get(k) else "-")
                 for k in RATIO_KEYS]
        print("  %-9s %s" % (name, "; ".join(parts)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ensure_netns(argv)
    from playwright.sync_api import sync_playwright

    from benchmarks.browser import browsers_label, launch, launch_firefox, windows_browser
    from benchmarks.browser_timings import Introducer, test_site

    t0 = time.monotonic()

    def log(msg):
        print("[%5.1f s] %s" % (time.monotonic() - t0, msg), flush=True)

    logs = Path(tempfile.mkdtemp(prefix="wraft-bench-"))  # the server's and Firefox's logs
    # The apps (of this checkout, or of --root) plus the bare baseline page.
    site = test_site(logs / "site", root=args.root.resolve() if args.root else REPO)
    server = Introducer(logs, root=site)
    server.start()
    log("server on 127.0.0.1:%d" % server.port)
    measured = {}
    try:
        with sync_playwright() as pw:
            chromium = firefox = None
            try:
                if any(b != "firefox" for b in args.browsers):
                    chromium = launch(pw)
                if any(b != "chromium" for b in args.browsers):
                    firefox = launch_firefox(logs / "firefox")
                for name in args.browsers:
                    label = browsers_label(name, chromium, firefox)
                    log("windows: %s" % label)
                    measured[name] = (label, measure(
                        args, windows_browser(name, chromium, firefox), server, log))
            finally:
                if chromium is not None:
                    chromium.close()
                if firefox is not None:
                    firefox.close()
    except Exception as e:
        print("benchmarks: failed: %s\n(server log: %s)" % (e, server.log()), file=sys.stderr)
        raise SystemExit(1)
    finally:
        server.stop()
        try:
            os.remove(server.log_path)
        except OSError:
            pass
    by_browser = {name: report(args, name, label, m) for name, (label, m) in measured.items()}
    print_ratios(by_browser)
    if not any(by_browser.values()):
        raise SystemExit(1)
    # One browser choice: its figures, as before; several: keyed by browser.
    out = by_browser[args.browsers[0]] if len(args.browsers) == 1 else {
        "by_browser": by_browser, "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "load_average": os.getloadavg(), "elapsed_s": round(time.monotonic() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    # the HTML report draws one browser choice's figures: the first that ran
    from benchmarks.report import write_report
    first = next(f for f in by_browser.values() if f)
    html = write_report(first, args.out.with_suffix(".html"))
    print("\nwrote %s and %s (%.0f s)" % (
        args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out,
        html.name, time.monotonic() - t0))


if __name__ == "__main__":
    main()
