"""Cluster timings in headless Chromium (a script, not a test).

    scripts/in-netns .venv/bin/python -m benchmarks.browser_timings [--runs 5] [--runtime mpy|py]

For each run, with fresh browser contexts (empty localStorage) and a fresh
cluster name on the /counter app:
  1. open -> first commit: from starting to open three pages to the moment a
     write proposed on page 0 (as soon as its Python is up) has committed and
     been applied there;
  2. leader loss -> next commit: from closing the leader's page to the moment
     a write proposed on a surviving page commits.
Prints every run and the medians; writes benchmarks/results/browser_timings.json.
Runs only inside scripts/in-netns (WebRTC needs it; no traffic leaves the host).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "browser"))

from browser_helpers import CHROMIUM, CHROMIUM_FLAGS, Introducer, test_site  # noqa: E402,F401

RESULTS = REPO / "benchmarks" / "results" / "browser_timings.json"


def propose_until_ok(page, command, deadline_s):
    """Propose until it commits (the driver itself retries for ~8 s)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        out = json.loads(page.evaluate("c => wraft.propose(c)", json.dumps(command)))
        if "ok" in out:
            return
    raise RuntimeError("no commit within %ss" % deadline_s)


LOAD_MS = {"mpy": 20_000, "py": 60_000}  # a window's longest wait for its runtime


def open_three(contexts, server, path):
    """Start loading `path` in windows 0, 1, 2 (one context each) one after
    another, without waiting for any: the pages, in order."""
    pages = []
    for i, ctx in enumerate(contexts):
        page = ctx.new_page()
        page.goto(server.base(i) + path, wait_until="commit")
        pages.append(page)
    return pages


def bare_load(browser, server, runtime):
    """The cold-start baseline: from starting to open three windows of a bare
    PyScript page of the same runtime (tests/browser/pages/bare.html: the
    apps' loader and runtime, no app Python) to all three done. Seconds."""
    query = "?runtime=py" if runtime == "py" else ""
    load_ms = LOAD_MS[runtime]
    contexts = [browser.new_context() for _ in range(3)]
    try:
        t0 = time.monotonic()
        pages = open_three(contexts, server, "/bare" + query)
        for p in pages:
            p.wait_for_selector("html[data-wraft-done]", state="attached", timeout=load_ms)
        return time.monotonic() - t0
    finally:
        for c in contexts:
            c.close()


def freeze(page):
    """Stop the page's main thread dead, as a hung window does: the debugger
    pauses its JS at the next task (no CPU spent), while the browser's network
    thread keeps its data channels open and acknowledged."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Debugger.enable")
    cdp.send("Debugger.pause")
    return cdp


def one_run(browser, server, run, runtime, failure="close"):
    """(open -> first commit s, leader lost -> next commit s). failure:
    "close" (the leader's window closes: its channels close) or "silent"
    (it hangs: channels stay open, nothing answers)."""
    name = "bench-%d-%d" % (run, int(time.time() * 1000) % 10**8)
    query = "?cluster=" + name + ("&runtime=py" if runtime == "py" else "")
    load_ms = LOAD_MS[runtime]
    contexts = [browser.new_context() for _ in range(3)]
    try:
        t0 = time.monotonic()
        pages = open_three(contexts, server, "/counter" + query)
        pages[0].wait_for_function("() => window.wraft && window.wraft.propose",
                                   timeout=load_ms)
        propose_until_ok(pages[0], 1, 60)
        first_commit = time.monotonic() - t0
        for p in pages:
            p.wait_for_function("() => window.wraft && window.wraft.status", timeout=load_ms)

        def leader():
            for i, p in enumerate(pages):
                if p and p.evaluate("document.documentElement.dataset.raftRole") == "leader":
                    return i
            return None
        end = time.monotonic() + 30
        lead = leader()
        while lead is None and time.monotonic() < end:
            time.sleep(0.05)
            lead = leader()
        survivor = pages[(lead + 1) % 3]
        propose_until_ok(survivor, 2, 30)  # survivor is caught up and connected
        t1 = time.monotonic()
        if failure == "silent":
            freeze(pages[lead])
        else:
            pages[lead].close()
        pages[lead] = None
        propose_until_ok(survivor, 3, 60)
        failover = time.monotonic() - t1
        return first_commit, failover
    finally:
        for c in contexts:
            c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runtime", choices=["mpy", "py"], default="mpy")
    args = ap.parse_args()
    if os.environ.get("WRAFT_IN_NETNS") != "1":
        sys.exit("run me inside scripts/in-netns (WebRTC needs the private namespace)")
    from playwright.sync_api import sync_playwright

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="wraft-timings-"))  # the server's log
    server = Introducer(logs)
    server.start()
    firsts, failovers = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_FLAGS)
            for run in range(args.runs):
                first, fail = one_run(browser, server, run, args.runtime)
                firsts.append(first)
                failovers.append(fail)
                print("run %d: open 3 pages -> first commit %.2f s; close leader -> next commit %.2f s"
                      % (run + 1, first, fail), flush=True)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(logs, ignore_errors=True)
    summary = {
        "runtime": args.runtime, "runs": args.runs,
        "open_to_first_commit_s": [round(x, 3) for x in firsts],
        "leader_close_to_next_commit_s": [round(x, 3) for x in failovers],
        "median_open_to_first_commit_s": round(statistics.median(firsts), 3),
        "median_leader_close_to_next_commit_s": round(statistics.median(failovers), 3),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print("median (%s, %d runs): open -> first commit %.2f s; close leader -> next commit %.2f s"
          % (args.runtime, args.runs, summary["median_open_to_first_commit_s"],
             summary["median_leader_close_to_next_commit_s"]))
    out = RESULTS if args.runtime == "mpy" else RESULTS.with_name("browser_timings_py.json")
    out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
