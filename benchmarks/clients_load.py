"""Do client windows slow the voters? (a script that prints figures, not a test)

    python -m benchmarks.clients_load [--rounds 3] [--duration 3] [--inflight 256]
                                      [--clients 3] [--client-writes 0]

Hermetic: re-runs itself inside scripts/in-netns; the server listens on
127.0.0.1 only. One fresh three-window bench cluster (pages/bench.html); the
leader's window measures pipelined commits (K writes in flight for
--duration s, each committed and applied on the leader). Rounds alternate
"0 clients" and "N clients" on the same cluster: N client windows
(/bench?client=1, attached to the leader, the member that does the most work)
follow the log live meanwhile (--via follower: attached to a follower); with --client-writes W each client also keeps
W writes of its own in flight during the client rounds. Prints the median
commits/s of each, their ratio, and how far the clients lagged at the end
(index not yet applied by the slowest client).
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
IN_NETNS = REPO / "scripts" / "in-netns"


def ensure_netns(argv):
    if os.environ.get("WRAFT_IN_NETNS") == "1":
        return
    print("clients_load: re-running inside scripts/in-netns", flush=True)
    os.execv(str(IN_NETNS), [str(IN_NETNS), sys.executable, "-m", "benchmarks.clients_load",
                             *argv])


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.clients_load")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each kind (alternating)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per pipelined run")
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--client-writes", type=int, default=0,
                    help="writes each client keeps in flight during client rounds")
    ap.add_argument("--via", choices=["leader", "follower"], default="leader",
                    help="member the clients attach to (the leader does the most work)")
    return ap.parse_args(argv)


def open_clients(browser, server, cluster, lead, n):
    pages, contexts = [], []
    for k in range(n):
        ctx = browser.new_context()
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto("%s/bench?cluster=%s&client=1&via=%d" % (server.base(k % 3), cluster, lead),
                  wait_until="commit")
        pages.append(page)
    deadline = time.monotonic() + 30
    for page in pages:
        while True:
            role = page.evaluate("document.documentElement.getAttribute('data-raft-role')")
            ro = page.evaluate("document.documentElement.getAttribute('data-raft-readonly')")
            if role == "client" and ro == "false":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("client window did not attach (role %r)" % role)
            time.sleep(0.1)
    return pages, contexts


CLIENT_LOAD_JS = """([k, stopAt]) => {
  window.__load = (async () => {
    let n = 0, errors = 0;
    const one = async () => {
      while (performance.now() < stopAt) {
        const r = JSON.parse(await wraft.propose(JSON.stringify(1)));
        if ('ok' in r) n++; else errors++;
      }
    };
    await Promise.all(Array.from({length: k}, one));
    return JSON.stringify({n, errors});
  })();
}"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ensure_netns(argv)
    from playwright.sync_api import sync_playwright

    from benchmarks.browser import BenchCluster, launch
    from benchmarks.browser_timings import Introducer

    logs = Path(tempfile.mkdtemp(prefix="wraft-clients-"))
    server = Introducer(logs)
    server.start()
    t0 = time.monotonic()

    def log(msg):
        print("[%5.1f s] %s" % (time.monotonic() - t0, msg), flush=True)

    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            c = BenchCluster(browser, server, "clients")
            lead = c.leader()
            log("cluster %s, leader %d" % (c.name, lead))
            c.run(lead, modes=["sequential"], duration_s=0.5)  # warm-up
            figures = {0: [], args.clients: []}
            clients, contexts = [], []
            client_writes = []
            hub_share = []  # fraction of the serving member's thread spent on clients
            via = lead if args.via == "leader" else (lead + 1) % 3

            def busy_ms():
                st = c.status(via).get("client_hub_stats") or {}
                return st.get("busy_ms", 0.0)
            for r in range(args.rounds):
                for n in (0, args.clients):
                    if n and not clients:
                        clients, contexts = open_clients(browser, server, c.name, via, n)
                        log("%d client windows attached to node %d (%s)" % (n, via, args.via))
                    if n == 0 and clients:
                        for ctx in contexts:  # a round with none: close them
                            ctx.close()
                        clients, contexts = [], []
                    if n and args.client_writes:
                        stop = (args.duration + 1) * 1000
                        for page in clients:
                            page.evaluate(CLIENT_LOAD_JS, [args.client_writes,
                                                           page.evaluate("performance.now()") + stop])
                    busy0, t_run = busy_ms(), time.monotonic()
                    res = c.run(lead, modes=["pipelined"], duration_s=args.duration,
                                inflight=args.inflight)["pipelined"]
                    if n:
                        hub_share.append((busy_ms() - busy0) / (1000 * (time.monotonic() - t_run)))
                    figures[n].append(res["per_s"])
                    lag = None
                    if n:
                        if args.client_writes:
                            done = [json.loads(p.evaluate("window.__load")) for p in clients]
                            client_writes.append(sum(d["n"] for d in done) / (args.duration + 1))
                        # how far behind the leader's last pipelined write the slowest client is
                        time.sleep(0.5)
                        applied = [json.loads(p.evaluate("wraft.status()"))["applied"]
                                   for p in clients]
                        lag = max(0, res["last_index"] - min(applied))
                    log("round %d, %d clients: %.0f commits/s%s" % (
                        r + 1, n, res["per_s"],
                        "" if lag is None else ", slowest client %d entries behind 0.5 s later" % lag))
            for ctx in contexts:
                ctx.close()
            c.close()
            browser.close()
    finally:
        server.stop()
    base = statistics.median(figures[0])
    with_clients = statistics.median(figures[args.clients])
    print()
    print("leader's pipelined commits/s (median of %d runs of %.1f s, %d in flight; "
          "clients attached to the %s):" % (args.rounds, args.duration, args.inflight, args.via))
    print("  0 clients: %8.0f   %s" % (base, [round(x) for x in figures[0]]))
    print("  %d clients: %8.0f   %s" % (args.clients, with_clients,
                                        [round(x) for x in figures[args.clients]]))
    print("  ratio (with / without): %.2f" % (with_clients / base if base else float("nan")))
    if hub_share:
        print("  node %s's time spent serving the clients (ClientHub busy_ms / wall time): "
              "median %.1f%% %s" % (args.via, 100 * statistics.median(hub_share),
                                    [round(100 * x, 1) for x in hub_share]))
    if client_writes:
        print("  client writes meanwhile: %.0f/s in total (median)" % statistics.median(client_writes))
    print("cores: %s, load average now: %s" % (os.cpu_count(), os.getloadavg()))


if __name__ == "__main__":
    main()
