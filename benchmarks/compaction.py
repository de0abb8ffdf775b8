"""Log compaction figures in three headless Chromium windows (KV app, /kv):

    python -m benchmarks.compaction [--writes 100000] [--lag-writes 5000]
                                    [--keys 50] [--inflight 64] [--repeats 1]

- localstorage_bytes_after: the largest window's localStorage (characters of
  keys + values; ASCII here, so bytes) after --writes pipelined writes over
  --keys keys, with the page's default thresholds (snapshot-entries 2000,
  snapshot-bytes 256 KiB); also the peak seen every 10% of the run.
- catch_up_s: a follower window is closed, the others commit --lag-writes
  writes, the window is reopened: seconds from its navigation to having
  applied the leader's commit index (page load + snapshot/tail load +
  InstallSnapshot + the rest). Also split: load (until the node runs) and
  catch-up after that.
Hermetic: re-executes itself inside scripts/in-netns. Prints figures and
writes benchmarks/results/compaction.json; asserts nothing.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "compaction.json"
IN_NETNS = REPO / "scripts" / "in-netns"

PIPELINE_JS = """async ([n, start, keys, inflight]) => {
  let next = start, failed = 0, firstError = null;
  const end = start + n, t0 = performance.now();
  async function worker() {
    while (next < end) {
      const i = next++;
      const out = JSON.parse(await wraft.propose(JSON.stringify(["put", "k" + (i % keys), "v" + i])));
      if (!("ok" in out)) { failed++; if (firstError === null) firstError = out.error; }
    }
  }
  await Promise.all(Array.from({length: inflight}, worker));
  return {failed, firstError, ms: performance.now() - t0};
}"""

STORAGE_JS = """() => { let n = 0; for (let k = 0; k < localStorage.length; k++) {
  const key = localStorage.key(k); n += key.length + localStorage.getItem(key).length } return n }"""


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compaction")
    ap.add_argument("--writes", type=int, default=100_000)
    ap.add_argument("--lag-writes", type=int, default=5000)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1, help="fresh clusters for catch_up_s")
    ap.add_argument("--out", type=Path, default=OUT)
    return ap.parse_args(argv)


class KVWindows:
    def __init__(self, browser, server, tag):
        self.server = server
        self.name = "%s-%d" % (tag, int(time.time() * 1000) % 10**8)
        self.contexts = [browser.new_context() for _ in range(3)]
        self.pages = [c.new_page() for c in self.contexts]
        self.console = [[] for _ in range(3)]
        for page, log in zip(self.pages, self.console):
            page.on("console", lambda m, log=log: log.append("[%s] %s" % (m.type, m.text)))
        for i in range(3):
            self.open(i)
        for i in range(3):
            self.wait_running(i)

    def url(self, i):
        return "%s/kv?cluster=%s" % (self.server.base(i), self.name)

    def open(self, i):
        self.pages[i].goto(self.url(i), wait_until="commit")

    def wait_running(self, i, timeout=30):
        self.pages[i].wait_for_selector("html[data-raft-role]", state="attached",
                                        timeout=timeout * 1000)

    def status(self, i):
        return json.loads(self.pages[i].evaluate("wraft.status()"))

    def leader(self, nodes=(0, 1, 2), timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            infos = [self.status(i) for i in nodes]
            leads = [i for i, s in zip(nodes, infos) if s["role"] == "leader"]
            if len(leads) == 1 and all(s["leader"] == str(leads[0]) and s["quorum"] for s in infos):
                return leads[0]
            time.sleep(0.05)
        raise RuntimeError("no stable leader in %ss" % timeout)

    def write(self, i, n, start, keys, inflight):
        out = self.pages[i].evaluate(PIPELINE_JS, [n, start, keys, inflight])
        if out["failed"]:
            raise RuntimeError("%d writes failed: %s" % (out["failed"], out["firstError"]))
        return out["ms"] / 1000

    def storage(self, i):
        return self.pages[i].evaluate(STORAGE_JS)

    def close(self):
        for c in self.contexts:
            c.close()


def storage_run(browser, server, a, log):
    w = KVWindows(browser, server, "compact-store")
    try:
        lead = w.leader()
        step = max(1000, a.writes // 10)
        done, peak, secs = 0, 0, 0.0
        while done < a.writes:
            n = min(step, a.writes - done)
            secs += w.write(lead, n, done, a.keys, a.inflight)
            done += n
            sizes = [w.storage(i) for i in range(3)]
            peak = max(peak, max(sizes))
            log("%d writes: localStorage %s chars" % (done, sizes))
        time.sleep(1)
        after = [w.storage(i) for i in range(3)]
        stats = w.status(lead)["node_stats"]
        return {"writes": a.writes, "keys": a.keys, "localstorage_bytes_after": max(after),
                "per_window": after, "peak": peak, "writes_per_s": round(a.writes / secs, 1),
                "snapshots_taken_leader": stats.get("snapshots_taken", 0)}
    finally:
        w.close()


def catch_up_run(browser, server, a, log):
    w = KVWindows(browser, server, "compact-lag")
    try:
        lead = w.leader()
        w.write(lead, 500, 0, a.keys, a.inflight)
        gone = [i for i in range(3) if i != lead][0]
        w.pages[gone].goto("about:blank")
        alive = [i for i in range(3) if i != gone]
        lead = w.leader(alive)
        w.write(lead, a.lag_writes, 500, a.keys, a.inflight)
        target = w.status(lead)["commit"]
        t0 = time.monotonic()
        w.open(gone)
        w.wait_running(gone)
        t_run = time.monotonic()
        while w.status(gone)["applied"] < target:
            if time.monotonic() - t0 > 120:
                raise RuntimeError("window did not catch up in 120 s")
            time.sleep(0.02)
        t_done = time.monotonic()
        st = w.status(gone)["node_stats"]
        return {"catch_up_s": round(t_done - t0, 3), "page_load_s": round(t_run - t0, 3),
                "after_load_s": round(t_done - t_run, 3), "target_index": target,
                "snapshots_installed": st.get("snapshots_installed", 0)}
    finally:
        w.close()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    if os.environ.get("WRAFT_IN_NETNS") != "1":
        os.execv(str(IN_NETNS), [str(IN_NETNS), sys.executable, "-m", "benchmarks.compaction", *argv])
    from playwright.sync_api import sync_playwright
    from benchmarks.browser import launch
    from benchmarks.browser_timings import Introducer

    t0 = time.monotonic()

    def log(msg):
        print("[%5.1f s] %s" % (time.monotonic() - t0, msg), flush=True)

    logs = Path(tempfile.mkdtemp(prefix="wraft-bench-"))  # the server's log
    server = Introducer(logs)
    server.start()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                store = storage_run(browser, server, a, log)
                lags = [catch_up_run(browser, server, a, log) for _ in range(a.repeats)]
            finally:
                browser.close()
    finally:
        server.stop()
        try:
            os.remove(server.log_path)
        except OSError:
            pass
    f = {"localstorage_bytes_after": store["localstorage_bytes_after"],
         "localstorage_writes": store["writes"],
         "catch_up_s": round(statistics.median([x["catch_up_s"] for x in lags]), 3),
         "catch_up_lag_writes": a.lag_writes, "storage": store, "catch_up_runs": lags,
         "load_average": os.getloadavg(),
         "command": "python -m benchmarks.compaction " + " ".join(argv),
         "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print()
    print("localStorage after %d writes (%d keys): %s chars max over windows (peak %s); "
          "%.0f writes/s" % (store["writes"], store["keys"], store["localstorage_bytes_after"],
                             store["peak"], store["writes_per_s"]))
    print("catch-up of a window closed for %d writes: %.2f s median (page load %s, then %s; "
          "installs %s)" % (a.lag_writes, f["catch_up_s"], [x["page_load_s"] for x in lags],
                            [x["after_load_s"] for x in lags],
                            [x["snapshots_installed"] for x in lags]))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(f, indent=1) + "\n")
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()


def collect_compaction(browser, server, writes, lag_writes, log, errors):
    """For benchmarks/__main__.py: the two figures (and their detail) on the
    runner's browser and server; None (and an entry in errors) on failure."""
    a = parse_args(["--writes", str(writes), "--lag-writes", str(lag_writes)])
    try:
        store = storage_run(browser, server, a, log)
        lag = catch_up_run(browser, server, a, log)
    except Exception as e:
        errors.append("compaction: %s" % (str(e).splitlines()[0] if str(e) else repr(e)))
        log("FAILED " + errors[-1])
        return None
    log("compaction: localStorage %s chars after %d writes; catch-up %.2f s after %d writes"
        % (store["localstorage_bytes_after"], writes, lag["catch_up_s"], lag_writes))
    return {"compaction_localstorage_bytes_after": store["localstorage_bytes_after"],
            "compaction_writes": writes, "catch_up_s": lag["catch_up_s"],
            "catch_up_lag_writes": lag_writes, "compaction": {"storage": store, "catch_up": lag}}
