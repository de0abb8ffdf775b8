"""Replica figures (a script that prints figures, not a test)

    python -m benchmarks.replica [--rounds 3] [--duration 3] [--inflight 256]
                                 [--writes 100000] [--skip-windows]

Hermetic: re-runs itself inside scripts/in-netns; the server listens on
127.0.0.1 only. Three measures:

1. Writes/s with the replica as the leader vs a window as the leader, in
   alternating rounds of one run, on two clusters of the same make-up (two
   bench windows and one `python -m raft.replica`, three voters):
   W: windows 0 and 1 elect a leader first, then replica 2 joins;
   R: replica 0 starts alone (--size 1) and leads; windows 1 and 2 are
      added as learners and promoted from its stdin.
   Each round the leader proposes --inflight writes at a time for
   --duration s, each awaited until committed and applied on the leader
   (the bench page's pipelined mode in a window; the replica's `bench`
   command). The state is a tally (cheap apply: replication is measured).
2. Catch-up from empty: a replica leader takes --writes writes; a fresh
   replica is added as a learner; the seconds until it has applied them
   all. Once with the leader keeping its whole log (entries only), once
   with its default compaction (snapshot + the log after it).
3. SQLite bytes per entry: the leader's file after a clean stop, divided by
   the entries it holds (compaction off), for a 1-byte command and for a
   ~100-byte key/value put.
"""

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IN_NETNS = REPO / "scripts" / "in-netns"
KV_PUT = ["put", "key-17", "v" * 80]


def ensure_netns(argv):
    if os.environ.get("WRAFT_IN_NETNS") == "1":
        return
    print("replica bench: re-running inside scripts/in-netns", flush=True)
    os.execv(str(IN_NETNS), [str(IN_NETNS), sys.executable, "-m", "benchmarks.replica", *argv])


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.replica")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each leader kind (alternating)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per pipelined run")
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--writes", type=int, default=100000, help="writes before the catch-up")
    ap.add_argument("--skip-windows", action="store_true",
                    help="only the catch-up and bytes figures (no browser)")
    return ap.parse_args(argv)


class Replica:
    """A `python -m raft.replica` subprocess driven through its stdin."""

    def __init__(self, ws, cluster, node, db, extra=()):
        self.node = node
        self.db = db
        self.lines = queue.Queue()
        self.err = []
        cmd = [sys.executable, "-m", "raft.replica", "--introducer", ws, "--cluster", cluster,
               "--node", str(node), "--db", str(db), "--state", "benchmarks.tally:Tally",
               *extra]
        self.p = subprocess.Popen(cmd, cwd=str(REPO), stdin=subprocess.PIPE, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(os.environ, PYTHONPATH=str(REPO)))
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, sink):
        for line in stream:
            sink(line)

    def command(self, line, timeout=600):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            try:
                msg = json.loads(self.lines.get(timeout=max(0.01, end - time.monotonic())))
            except queue.Empty:
                raise RuntimeError("replica %s: no answer to %r\n%s"
                                   % (self.node, line, "".join(self.err[-20:])))
            if msg.get("command") == line:
                if "ok" not in msg:
                    raise RuntimeError("replica %s: %r failed: %s" % (self.node, line, msg))
                return msg["ok"]

    def status(self):
        return self.command("status")

    def quit(self):
        self.command("quit")
        self.p.wait(30)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def wait(fn, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def bench_window(page, duration, inflight):
    limit_ms = int(1000 * (60 + 2 * duration))
    out = json.loads(page.evaluate(
        "([o, ms]) => Promise.race([wraftBench.run(o), new Promise(r => setTimeout("
        "() => r(JSON.stringify({error: 'no answer in ' + ms + ' ms'})), ms))])",
        [json.dumps({"modes": ["pipelined"], "duration_s": duration, "inflight": inflight}),
         limit_ms]))
    if "ok" not in out:
        raise RuntimeError("bench page: %s" % out.get("error"))
    return out["ok"]["pipelined"]


def window_status(page):
    return json.loads(page.evaluate("wraft.status()"))


def leader_comparison(args, server, tmp, log):
    from playwright.sync_api import sync_playwright
    from benchmarks.browser import LOAD_MS, launch

    ws = "ws://127.0.0.1:%d/ws" % server.port
    stamp = int(time.time() * 1000) % 10**8
    reps = []
    figures = {"window": [], "replica": []}
    with sync_playwright() as pw:
        browser = launch(pw)
        contexts = []

        def open_bench(node, cluster, query=""):
            ctx = browser.new_context()
            contexts.append(ctx)
            page = ctx.new_page()
            page.goto("%s/bench?cluster=%s%s" % (server.base(node), cluster, query),
                      wait_until="commit")
            page.wait_for_selector("body[data-bench]", state="attached", timeout=LOAD_MS["mpy"])
            return page
        try:
            # W: a window leads
            cw = "repw-%d" % stamp
            w_pages = {n: open_bench(n, cw) for n in (0, 1)}

            def window_leader():
                infos = {n: window_status(p) for n, p in w_pages.items()}
                leads = [n for n, s in infos.items() if s["role"] == "leader"]
                return (leads[0],) if len(leads) == 1 and all(
                    s["quorum"] and s["leader"] == str(leads[0]) for s in infos.values()) else None
            w_lead = wait(window_leader, 30, "a window leader")[0]
            reps.append(Replica(ws, cw, 2, tmp / "w2.sqlite"))
            wait(lambda: len(window_status(w_pages[w_lead])["peers"]) == 2, 30, "replica in W")
            log("cluster W: window %d leads, replica 2 follows" % w_lead)
            # R: the replica leads
            cr = "repr-%d" % stamp
            lead = Replica(ws, cr, 0, tmp / "r0.sqlite", extra=["--size", "1"])
            reps.append(lead)
            wait(lambda: lead.status()["role"] == "leader", 30, "replica leader")
            r_pages = {n: open_bench(n, cr, "&size=1") for n in (1, 2)}
            for n in (1, 2):
                wait(lambda: str(n) in lead.status()["presence"], 30, "window %d present" % n)
                lead.command("add_learner %d" % n)
            for n in (1, 2):
                wait(lambda: (lead.status()["peer_status"] or {}).get(str(n), {}).get("recent"),
                     30, "learner %d heard from" % n)
                lead.command("promote %d" % n)
            wait(lambda: all(window_status(p)["membership"] == "voter" for p in r_pages.values()),
                 30, "windows promoted")
            log("cluster R: replica 0 leads, windows 1 and 2 follow")
            bench_window(w_pages[w_lead], 0.5, 32)  # warm-ups
            lead.command("bench " + json.dumps({"seconds": 0.5, "inflight": 32}))
            for r in range(args.rounds):
                res = bench_window(w_pages[w_lead], args.duration, args.inflight)
                figures["window"].append(res["per_s"])
                log("round %d, window leads:  %7.0f writes/s (p50 %s ms)"
                    % (r + 1, res["per_s"], res.get("p50_ms")))
                res = lead.command("bench " + json.dumps({"seconds": args.duration,
                                                          "inflight": args.inflight}))
                figures["replica"].append(res["per_s"])
                log("round %d, replica leads: %7.0f writes/s (p50 %s ms)"
                    % (r + 1, res["per_s"], res["p50_ms"]))
        finally:
            for rep in reps:
                rep.kill()
            for ctx in contexts:
                ctx.close()
            browser.close()
    return figures


def catch_up(args, server, tmp, log, compaction):
    ws = "ws://127.0.0.1:%d/ws" % server.port
    name = "repc-%s-%d" % ("snap" if compaction else "log", int(time.time() * 1000) % 10**8)
    extra = ["--size", "1"] + ([] if compaction else ["--snapshot-entries", "0",
                                                      "--snapshot-bytes", "0"])
    lead = Replica(ws, name, 0, tmp / (name + "-0.sqlite"), extra=extra)
    fresh = None
    try:
        wait(lambda: lead.status()["role"] == "leader", 30, "leader")
        t = time.monotonic()
        res = lead.command("bench " + json.dumps({"seconds": 3600, "inflight": args.inflight,
                                                  "writes": args.writes}))
        log("%s: %d writes in %.1f s (%.0f/s) on a replica leader alone"
            % (name, res["writes"], time.monotonic() - t, res["per_s"]))
        target = lead.status()["commit"]
        fresh = Replica(ws, name, 1, tmp / (name + "-1.sqlite"))
        wait(lambda: "1" in lead.status()["peers"], 30, "fresh replica connected")
        t0 = time.monotonic()
        lead.command("add_learner 1")
        wait(lambda: fresh.status()["applied"] >= target, 600, "catch-up")
        seconds = time.monotonic() - t0
        st = fresh.status()
        log("%s: fresh replica applied %d entries in %.2f s (from %s)"
            % (name, target, seconds, "a snapshot + tail" if compaction else "the whole log"))
        lead_status = lead.status()
        lead.quit()
        fresh.quit()
        return {"entries": target, "seconds": seconds, "leader_log_entries":
                lead_status["last_index"], "fresh_db_bytes": st["db_bytes"],
                "leader_db_bytes": os.path.getsize(lead.db)}
    finally:
        lead.kill()
        if fresh is not None:
            fresh.kill()


def bytes_per_entry(args, server, tmp, log, command, writes):
    ws = "ws://127.0.0.1:%d/ws" % server.port
    name = "repb-%d" % (int(time.time() * 1000) % 10**8)
    lead = Replica(ws, name, 0, tmp / (name + ".sqlite"),
                   extra=["--size", "1", "--snapshot-entries", "0", "--snapshot-bytes", "0"])
    try:
        wait(lambda: lead.status()["role"] == "leader", 30, "leader")
        lead.command("bench " + json.dumps({"seconds": 3600, "inflight": args.inflight,
                                            "writes": writes, "command": command}))
        entries = lead.status()["last_index"]
        lead.quit()
        size = os.path.getsize(lead.db)
        entry = json.dumps([1, "0-0123abcd", 12345, command], separators=(",", ":"))
        log("%s: %d entries of %d JSON bytes, file %d bytes: %.1f bytes/entry"
            % (json.dumps(command)[:30], entries, len(entry), size, size / entries))
        return {"command": command, "entries": entries, "json_bytes": len(entry),
                "file_bytes": size, "per_entry": size / entries}
    finally:
        lead.kill()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ensure_netns(argv)
    from benchmarks.browser_timings import Introducer

    tmp = Path(tempfile.mkdtemp(prefix="wraft-replica-bench-"))
    server = Introducer(tmp)
    server.start()
    t0 = time.monotonic()

    def log(msg):
        print("[%6.1f s] %s" % (time.monotonic() - t0, msg), flush=True)
    out = {"args": vars(args)}
    try:
        if not args.skip_windows:
            out["leaders"] = leader_comparison(args, server, tmp, log)
        out["catch_up_log"] = catch_up(args, server, tmp, log, compaction=False)
        out["catch_up_snapshot"] = catch_up(args, server, tmp, log, compaction=True)
        out["bytes"] = [bytes_per_entry(args, server, tmp, log, 1, 20000),
                        bytes_per_entry(args, server, tmp, log, KV_PUT, 20000)]
    finally:
        server.stop()
    out["loadavg"] = os.getloadavg()
    print()
    if "leaders" in out:
        f = out["leaders"]
        w, r = statistics.median(f["window"]), statistics.median(f["replica"])
        print("pipelined writes/s, %d in flight, %g s runs, median of %d alternating rounds:"
              % (args.inflight, args.duration, args.rounds))
        print("  a window leads (2 windows + 1 replica): %8.0f  %s" % (w, [round(x) for x in f["window"]]))
        print("  the replica leads (1 replica + 2 windows): %5.0f  %s" % (r, [round(x) for x in f["replica"]]))
        print("  ratio replica / window: %.2f" % (r / w if w else float("nan")))
    for key, what in (("catch_up_log", "the whole log"), ("catch_up_snapshot", "snapshot + tail")):
        c = out[key]
        print("catch-up from empty after %d writes (%s): %.2f s (%.0f entries/s)"
              % (c["entries"], what, c["seconds"], c["entries"] / c["seconds"]))
    for b in out["bytes"]:
        print("SQLite bytes per entry (%d-byte JSON entries, compaction off): %.1f"
              % (b["json_bytes"], b["per_entry"]))
    print("cores: %s, load average now: %s" % (os.cpu_count(), out["loadavg"]))
    results = REPO / "benchmarks" / "results" / "replica.json"
    results.write_text(json.dumps(out, indent=1) + "\n")
    print("written to", results.relative_to(REPO))


if __name__ == "__main__":
    main()
