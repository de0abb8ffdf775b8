"""Drive the bench page (pages/bench.html) in three headless browser windows:
Chromium, Firefox (firefox-esr over WebDriver BiDi) or a mix of the two.

Used by `python -m benchmarks` (benchmarks/__main__.py); needs to run inside
scripts/in-netns. One cluster = three browser contexts (three origins,
wraft0/1/2.localhost, each with its own localStorage) on a fresh cluster name.
The leader's window runs the bench (a follower would forward every write);
the other windows only replicate, and can be profiled meanwhile.
"""

import json
import time

from benchmarks import js_floor
from benchmarks.browser_timings import CHROMIUM, CHROMIUM_FLAGS, LOAD_MS, open_three
from wraft.firefox import Firefox, Mix

# Headless windows are all "visible", but keep Chromium from slowing timers of
# windows it considers in the background (three windows run at once).
BENCH_FLAGS = CHROMIUM_FLAGS + [
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
ELECT_S = 30


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BENCH_FLAGS)


def launch_firefox(workdir):
    return Firefox(workdir).start()


def windows_browser(name, chromium, firefox):
    """What the helpers take as `browser`: its new_context() gives windows 0, 1, 2
    of each cluster in the chosen browsers."""
    if name == "chromium":
        return chromium
    if name == "firefox":
        return Mix([firefox] * 3)
    return Mix([chromium, chromium, firefox])


def browsers_label(name, chromium, firefox):
    if name == "chromium":
        return "Chromium %s x3" % chromium.version
    if name == "firefox":
        return "Firefox %s x3" % firefox.version
    return "Chromium %s x2 + Firefox %s" % (chromium.version, firefox.version)


class BenchCluster:
    """Three bench windows on one fresh cluster."""

    def __init__(self, browser, server, tag, runtime="mpy", init_script=None):
        self.name = "%s-%d" % (tag, int(time.time() * 1000) % 10**8)
        self.runtime = runtime
        self.contexts = [browser.new_context() for _ in range(3)]
        if init_script is not None:
            for ctx in self.contexts:
                if hasattr(ctx, "add_init_script"):  # Playwright (Chromium) only
                    ctx.add_init_script(init_script)
        self.pages = []
        self.console = [[] for _ in range(3)]
        query = "?cluster=" + self.name + ("&runtime=py" if runtime == "py" else "")
        for i, ctx in enumerate(self.contexts):
            page = ctx.new_page()
            log = self.console[i]
            page.on("console", lambda m, log=log: log.append("[%s] %s" % (m.type, m.text)))
            page.on("pageerror", lambda e, log=log: log.append("[pageerror] %s" % e))
            page.goto(server.base(i) + "/bench" + query, wait_until="commit")
            self.pages.append(page)
        for page in self.pages:
            page.wait_for_selector("body[data-bench]", state="attached", timeout=LOAD_MS[runtime])

    def status(self, i):
        return json.loads(self.pages[i].evaluate("wraft.status()"))

    def leader(self, timeout=ELECT_S):
        """Index of the one leader every window follows, with all channels up."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            infos = [self.status(i) for i in range(3)]
            leads = [i for i, s in enumerate(infos) if s["role"] == "leader"]
            if (len(leads) == 1 and all(s["leader"] == str(leads[0]) and s["quorum"]
                                        and len(s["peers"]) == 2 for s in infos)):
                return leads[0]
            time.sleep(0.05)
        raise RuntimeError("no stable leader in %ss: %s\n%s" % (timeout, infos, self.tail()))

    def run(self, i, **options):
        """window.wraftBench.run(options) in window i; returns its results dict."""
        # Playwright's evaluate has no timeout: a page that never answers
        # must fail the run, not hang the runner.
        limit_ms = int(1000 * (60 + 2 * options.get("duration_s", 3) * len(options.get("modes", "123"))))
        out = json.loads(self.pages[i].evaluate(
            "([o, ms]) => Promise.race([wraftBench.run(o), new Promise(r => setTimeout("
            "() => r(JSON.stringify({error: 'no answer in ' + ms + ' ms'})), ms))])",
            [json.dumps(options), limit_ms]))
        if "ok" not in out:
            raise RuntimeError("bench run failed: %s\n%s" % (out.get("error"), self.tail()))
        return out["ok"]

    def time_origin(self, i):
        return self.pages[i].evaluate("performance.timeOrigin")

    def applied_at(self, i, index):
        """Epoch ms at which window i had applied `index` (None: not yet)."""
        t = json.loads(self.pages[i].evaluate("i => wraftBench.appliedAt(i)", index))
        return None if t is None else self.time_origin(i) + t

    def wait_applied_everywhere(self, index, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            times = [self.applied_at(i, index) for i in range(3)]
            if all(t is not None for t in times):
                return times
            time.sleep(0.1)
        raise RuntimeError("index %d not applied on every window in %ss" % (index, timeout))

    def profile_start(self, windows):
        for i in windows:
            self.pages[i].evaluate("wraftBench.profileStart()")

    def profile_stop(self, windows):
        return {str(i): json.loads(self.pages[i].evaluate("wraftBench.profileStop()"))
                for i in windows}

    def storage_bytes(self, i):
        """Characters held in window i's localStorage (keys + values; ASCII
        here, so bytes of text; Chromium's quota counts UTF-16 units)."""
        return self.pages[i].evaluate(
            "() => { let n = 0; for (let k = 0; k < localStorage.length; k++) {"
            " const key = localStorage.key(k); n += key.length + localStorage.getItem(key).length }"
            " return n }")

    def tail(self, lines=40):
        return "\n".join("----- window %d -----\n%s" % (i, "\n".join(c[-lines:]))
                         for i, c in enumerate(self.console))

    def close(self):
        for c in self.contexts:
            c.close()


def bench_once(browser, server, duration_s, inflight, runtime="mpy", profile=False):
    """One fresh cluster; the leader runs rtt, sequential and pipelined for
    duration_s each. Returns the leader's results plus, for the pipelined
    phase, the time until every window had applied all of it."""
    native = profile and hasattr(browser, "new_context") and not hasattr(browser, "browsers")
    c = BenchCluster(browser, server, "bench", runtime,
                     init_script=js_floor.NATIVE_TIMERS if native else None)
    try:
        lead = c.leader()
        others = [i for i in range(3) if i != lead]
        # warm-up: the first writes after an election pay for JIT/allocation
        c.run(lead, modes=["sequential"], duration_s=0.5)
        if profile:
            c.profile_start(others)
        modes = ["rtt", "sequential", "pipelined", "batched"]
        try:
            r = c.run(lead, modes=modes, duration_s=duration_s, inflight=inflight,
                      profile=profile)
        except RuntimeError as e:  # an older bench page (--root): no batched mode
            if "modes:" not in str(e):
                raise
            r = c.run(lead, modes=modes[:3], duration_s=duration_s, inflight=inflight,
                      profile=profile)
        if profile:
            r["follower_profiles"] = c.profile_stop(others)
        p = r["pipelined"]
        times = c.wait_applied_everywhere(p["last_index"])
        start = c.time_origin(lead) + p["start_ms"]
        p["all_windows_s"] = round((max(times) - start) / 1000, 4)
        p["all_windows_per_s"] = round(p["count"] / ((max(times) - start) / 1000), 1)
        # throughput over time at the leader (the HTML report): [applied index, ms]
        r["timeline"] = json.loads(c.pages[lead].evaluate("wraftBench.timeline()"))
        r["leader_window"] = lead
        # the floor: the same two windows, plain JS (benchmarks/js_floor.py)
        try:
            r["floor"] = js_floor.floor(c.pages, lead, others[0], min(duration_s, 2.0))
        except Exception as e:  # a figure left out, not a failed bench
            r["floor"] = {"error": str(e).splitlines()[0] if str(e) else repr(e)}
        if native:
            # Chromium's own send/setItem cost while Raft writes one at a time
            for i in range(3):
                js_floor.reset_native(c.pages[i])
            seq = c.run(lead, modes=["sequential"], duration_s=duration_s)["sequential"]
            r["native_sequential"] = {
                "writes": seq["count"], "leader_window": lead,
                "windows": {str(i): js_floor.native_costs(c.pages[i]) for i in range(3)}}
        r["storage_bytes"] = [c.storage_bytes(i) for i in range(3)]
        r["counts"] = [json.loads(c.pages[i].evaluate("wraft.state()")) for i in range(3)]
        return r
    finally:
        c.close()


def cold_start_breakdown(browser, server, runtime="mpy", timeout=90):
    """Where a cold start's time goes: from starting to open three fresh
    windows to (1) Python running in all of them, (2) every data channel up,
    (3) one leader with a quorum, (4) a first write committed. Seconds.
    (Polled every ~20 ms from here, so each mark may be a poll late.)"""
    name = "cold-%d" % (int(time.time() * 1000) % 10**8)
    query = "?cluster=" + name + ("&runtime=py" if runtime == "py" else "")
    contexts = [browser.new_context() for _ in range(3)]
    marks = {}
    try:
        t0 = time.monotonic()
        pages = open_three(contexts, server, "/bench" + query)
        probe = ("() => { if (!window.wraft || !document.body.dataset.bench) return null;"
                 " const s = JSON.parse(wraft.status());"
                 " return [s.peers.length, s.role, s.quorum] }")
        end = t0 + timeout
        while time.monotonic() < end:
            states = [p.evaluate(probe) for p in pages]
            now = time.monotonic() - t0
            if all(states) and "python_ready_s" not in marks:
                marks["python_ready_s"] = round(now, 3)
            if all(states) and all(s[0] == 2 for s in states) and "channels_up_s" not in marks:
                marks["channels_up_s"] = round(now, 3)
            leads = [i for i, s in enumerate(states) if s and s[1] == "leader" and s[2]]
            if leads:
                marks.setdefault("leader_s", round(now, 3))
                out = json.loads(pages[leads[0]].evaluate("c => wraft.propose(c)", "1"))
                if "ok" in out:
                    # a quorum of channels can elect before the last one opens
                    marks.setdefault("channels_up_s", None)
                    marks["first_commit_s"] = round(time.monotonic() - t0, 3)
                    # Without the harness's own cost of creating the pages:
                    # from the first window's navigation start (epoch ms, one
                    # machine clock) to the commit; and how far apart the
                    # three navigations started.
                    origins = [p.evaluate("performance.timeOrigin") for p in pages]
                    marks["first_commit_from_navigation_s"] = round(
                        (time.time() * 1000 - min(origins)) / 1000, 3)
                    marks["navigation_spread_s"] = round((max(origins) - min(origins)) / 1000, 3)
                    # inside each window, from navigation start: runtime up
                    # (our script starts), then node started (script done)
                    loads = [p.evaluate("() => [+document.body.dataset.pythonStartMs,"
                                        " +document.body.dataset.readyMs]") for p in pages]
                    marks["window_runtime_up_s"] = [round(a / 1000, 3) for a, _ in loads]
                    marks["window_script_done_s"] = [round(b / 1000, 3) for _, b in loads]
                    return marks
            time.sleep(0.02)
        raise RuntimeError("cold start: no commit within %ss (%s)" % (timeout, marks))
    finally:
        for c in contexts:
            c.close()
