# The benchmark app (pages/bench.html). Every window runs a Tally node; the
# window you press "run" in (the runner uses the leader) measures:
#   rtt        raw data-channel round trips to one peer, from Python, through
#              the same Transport and channel Raft uses (the baseline);
#   sequential the original's method: one client, each write awaited until
#              committed and applied here, running average shown live;
#   pipelined  K writes in flight (default 256), for a fixed duration;
#   batched    bursts of K writes, each burst one app.propose_many() call;
#   hop        (diagnostic) bare asyncio task switches per second.
# Options (JSON): modes, duration_s, inflight, profile (time the driver's
# steps during the run, raft/runtime/timings.py). Results: <pre id="results"> (JSON),
# window.wraftBench (JSON in/out, see expose()), and
# body[data-bench] = idle | running | done | error.
from js import performance

T_PYTHON_START = performance.now()  # the runtime is up; our imports start now

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from js import Function, Object, window  # noqa: E402
from pyscript import document, when  # noqa: E402
from pyscript.ffi import create_proxy  # noqa: E402

from raft.browser.app import start  # noqa: E402
from raft.runtime.timings import Timings  # noqa: E402

DEFAULTS = {"modes": ["rtt", "sequential", "pipelined"], "duration_s": 3.0, "inflight": 256,
            "profile": False}
MODES = ("rtt", "sequential", "pipelined", "batched", "hop")
# Latency histogram bucket bounds (ms), for the runner's HTML report.
HIST_MS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_DURATION_S = 120
MAX_INFLIGHT = 4096
STALL_MS = 5000        # no progress for this long: the run stops with an error
TIMELINE_CAP = 20000   # (applied index, wall ms) samples kept per page
SHOW_EVERY_MS = 100    # the live count is redrawn at most this often
# Bench pings travel beside Raft on the same channel; Raft's codec text
# always starts with "[", so a "~" prefix can never be taken for a message.
PING, PONG = "~p", "~q"
APPEND_REPLY = "ar"  # the AppendEntries reply's type (raft/API.md, Messages)


class Tally:
    """Replicated state: how many bench writes were applied (cheap apply,
    so the figures measure replication, not the app)."""

    def __init__(self):
        self.count = 0

    def apply(self, command):
        self.count += 1
        return self.count

    def snapshot(self):
        return self.count

    def restore(self, data):
        self.count = data


class BenchError(Exception):
    pass


class Profiler:
    """Where the main thread's time goes during a run (option "profile"):
    the driver's instrumentation hook, on for the run only."""

    def __init__(self, driver):
        self.driver = driver
        self.t0 = now_ms()
        driver.instrument(Timings(now_ms))

    def stop(self):
        t = self.driver.timings
        self.driver.instrument(None)
        return t.report(now_ms() - self.t0)


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) * q + 99) // 100  # ceil(n*q/100), 1-based rank
    return sorted_values[max(0, min(len(sorted_values) - 1, k - 1))]


def histogram(sorted_us):
    """[[upper bound ms, count], ...] over HIST_MS (the last bound: beyond)."""
    out = [[b, 0] for b in HIST_MS] + [[None, 0]]
    i = 0
    for v in sorted_us:
        while i < len(HIST_MS) and v > HIST_MS[i] * 1000:
            i += 1
        out[i][1] += 1
    return out


def summary(name, count, seconds, lat_us, extra=None):
    lat_us.sort()
    out = {
        "hist_ms": histogram(lat_us),
        "mode": name, "count": count, "seconds": round(seconds, 4),
        "per_s": round(count / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": None if not lat_us else percentile(lat_us, 50) / 1000,
        "p99_ms": None if not lat_us else percentile(lat_us, 99) / 1000,
        "max_ms": None if not lat_us else lat_us[-1] / 1000,
    }
    if extra:
        out.update(extra)
    return out


def now_ms():
    return performance.now()


def el(name):
    return document.getElementById(name)


def show(text):
    el("live").textContent = text


class Bench:
    def __init__(self, app):
        self.app = app
        self.running = False
        self.results = None
        # [applied index, performance.now()] after each apply batch; add the
        # page's performance.timeOrigin to compare pages (Date.now() would
        # arrive wrapped to 32 bits under MicroPython)
        self.timeline = []
        self.pong = asyncio.Event()
        self.pong_seen = 0
        self.dropped_side = 0       # malformed "~" messages seen
        self.ping_n = 0
        self.progress_ms = 0
        self.profiler = None        # the page-wide one (profileStart/profileStop)
        self.count_shown_ms = -SHOW_EVERY_MS
        self.count_pending = False

    # -- the side channel for the RTT baseline --------------------------
    def wrap_transport(self):
        """Put the ping echo in front of the driver on every data channel.
        Transport reads on_message when it opens a channel, and app.start()
        only starts connecting, so setting it now covers every channel."""
        transport = self.transport
        if transport is None:
            return
        to_driver = transport.on_message

        def on_message(peer, text):
            if not text.startswith("~"):
                return to_driver(peer, text)
            seq = text[2:]
            if not seq.isdigit() or len(seq) > 12:
                self.dropped_side += 1  # malformed ping/pong: ignore, count
            elif text.startswith(PING):
                transport.send(peer, PONG + seq)
            elif text.startswith(PONG):
                self.pong_seen = int(seq)
                self.pong.set()
            else:
                self.dropped_side += 1
        transport.on_message = on_message

    @property
    def transport(self):
        rt = self.app.runtime
        return rt.transport if rt is not None else None

    def on_applied(self, state):
        tl = self.timeline
        t = now_ms()
        tl.append([self.app.applied_index, t])
        if len(tl) > TIMELINE_CAP:
            del tl[:len(tl) - TIMELINE_CAP]
        # A DOM write per apply makes the renderer restyle and repaint on
        # the thread that runs Raft: show the count at most every
        # SHOW_EVERY_MS, and once more after the last change.
        if self.count_pending:
            return
        wait = self.count_shown_ms + SHOW_EVERY_MS - t
        if wait <= 0:
            self.show_count()
        else:
            self.count_pending = True
            asyncio.get_event_loop().create_task(self.show_count_later(wait))

    def show_count(self):
        self.count_shown_ms = now_ms()
        self.count_pending = False
        el("count").textContent = str(self.app.state.count)

    async def show_count_later(self, wait_ms):
        await asyncio.sleep(wait_ms / 1000)
        self.show_count()

    def first_applied_at(self, index):
        """performance.now() at which this page first had applied >= index, or None."""
        for i, t in self.timeline:
            if i >= index:
                return t
        return None

    # -- the measurements -----------------------------------------------
    async def rtt(self, duration_s):
        peers = self.transport.peers_up() if self.transport else []
        if not peers:
            raise BenchError("rtt: no data channel is open yet")
        peer = peers[0]
        lat = []
        t0 = now_ms()
        end = t0 + duration_s * 1000
        send = self.transport.send
        done = []

        async def watchdog():
            # A lost pong would leave pong.wait() hanging: wake it to give up.
            while not done:
                await asyncio.sleep(0.5)
                if self.stalled():
                    self.pong.set()
        asyncio.get_event_loop().create_task(watchdog())
        try:
            return await self._ping_loop(peer, send, t0, end, lat)
        finally:
            done.append(True)

    async def _ping_loop(self, peer, send, t0, end, lat):
        n = self.ping_n  # numbers go on across runs: a late pong never matches
        last_show = t0
        while True:
            t = now_ms()
            if t >= end:
                break
            n += 1
            self.ping_n = n
            self.pong.clear()
            if not send(peer, PING + str(n)):
                raise BenchError("rtt: channel to %s closed" % peer)
            while self.pong_seen != n:
                await self.pong.wait()
                self.pong.clear()
                if self.stalled():
                    raise BenchError("rtt: no reply from %s for %d ms" % (peer, STALL_MS))
            t1 = now_ms()
            lat.append(int((t1 - t) * 1000))
            self.progress_ms = t1
            if t1 - last_show > 250:
                last_show = t1
                show("rtt: %d round trips, %.0f/s" % (len(lat), len(lat) * 1000 / (t1 - t0)))
        return summary("rtt", len(lat), (now_ms() - t0) / 1000, lat, {"peer": peer})

    async def sequential(self, duration_s):
        app = self.app
        lat = []
        t0 = now_ms()
        end = t0 + duration_s * 1000
        last_show = t0
        first = last = None
        errors = 0
        to_ack, after_ack = [], []  # where a write's time goes (see summary)
        driver = app.runtime
        own = driver.timings is None  # (a profiled run has them already)
        if own:
            driver.instrument(Timings(now_ms, phases=False))  # message arrivals only
        trace = driver.timings
        try:
            while True:
                t = now_ms()
                if t >= end:
                    break
                trace.arrived.clear()
                try:
                    count = await app.propose(1)
                except Exception as e:
                    errors += 1
                    if errors > 10:
                        raise BenchError("sequential: writes keep failing: %r" % (e,))
                    continue
                t1 = now_ms()
                lat.append(int((t1 - t) * 1000))
                ack_ms = trace.arrived.get(APPEND_REPLY)
                if ack_ms is not None:
                    to_ack.append(int((ack_ms - t) * 1000))
                    after_ack.append(int((t1 - ack_ms) * 1000))
                self.progress_ms = t1
                if first is None:
                    first = count
                last = count
                if t1 - last_show > 250:  # the original's running average
                    last_show = t1
                    show("sequential: %d writes, %.0f writes/s" % (len(lat), len(lat) * 1000 / (t1 - t0)))
        finally:
            if own:
                driver.instrument(None)
        seconds = (now_ms() - t0) / 1000
        to_ack.sort()
        after_ack.sort()
        return summary("sequential", len(lat), seconds, lat, {
            "errors": errors, "first_count": first, "last_count": last,
            # propose -> first follower's AppendEntries reply arrives here, and
            # that reply -> propose() returns (commit, apply, task wake-up)
            "to_first_ack_p50_ms": None if not to_ack else percentile(to_ack, 50) / 1000,
            "after_ack_p50_ms": None if not after_ack else percentile(after_ack, 50) / 1000})

    async def hop(self, duration_s):
        """Diagnostic: rate of bare asyncio task switches (await sleep(0)) in
        this runtime; each wake-up through the event loop costs one."""
        n = 0
        t0 = now_ms()
        end = t0 + duration_s * 1000
        lat = []
        while True:
            t = now_ms()
            if t >= end:
                break
            await asyncio.sleep(0)
            n += 1
            lat.append(int((now_ms() - t) * 1000))
        self.progress_ms = now_ms()
        return summary("hop", n, (now_ms() - t0) / 1000, lat)

    async def pipelined(self, duration_s, inflight):
        app = self.app
        lat = []
        box = {"errors": 0, "first": None, "last": 0, "done": 0}
        t0 = now_ms()
        end = t0 + duration_s * 1000

        async def client():
            while now_ms() < end:
                t = now_ms()
                try:
                    count = await app.propose(1)
                except Exception as e:
                    box["errors"] += 1
                    box["error"] = repr(e)
                    if box["errors"] > 10 * inflight:
                        return
                    continue
                t1 = now_ms()
                lat.append(int((t1 - t) * 1000))
                self.progress_ms = t1
                if box["first"] is None or count < box["first"]:
                    box["first"] = count
                if count > box["last"]:
                    box["last"] = count

        loop = asyncio.get_event_loop()
        tasks = [loop.create_task(client()) for _ in range(inflight)]
        last_show = t0
        while any(not t.done() for t in tasks):
            await asyncio.sleep(0.1)
            t1 = now_ms()
            if self.stalled():
                for t in tasks:
                    t.cancel()
                raise BenchError("pipelined: no write completed for %d ms" % STALL_MS)
            if t1 - last_show > 250:
                last_show = t1
                show("pipelined: %d writes, %.0f writes/s" % (len(lat), len(lat) * 1000 / (t1 - t0)))
        seconds = (self.progress_ms - t0) / 1000 if lat else (now_ms() - t0) / 1000
        last_index = app.applied_index
        return summary("pipelined", len(lat), seconds, lat, {
            "inflight": inflight, "errors": box["errors"], "last_error": box.get("error"),
            "first_count": box["first"], "last_count": box["last"] if lat else None,
            # for "committed on every window": the last index, when this page
            # had applied it, and the start (performance.now() of this page)
            "last_index": last_index,
            "end_ms": self.first_applied_at(last_index),
            "start_ms": t0,
        })

    async def batched(self, duration_s, burst):
        """Bursts of `burst` writes, each one app.propose_many() (the API
        for apps that write bursts); latency is per burst."""
        app = self.app
        lat = []
        count = errors = 0
        t0 = now_ms()
        end = t0 + duration_s * 1000
        last_show = t0
        while now_ms() < end:
            t = now_ms()
            try:
                results = await app.propose_many([1] * burst)
            except Exception as e:
                errors += 1
                if errors > 10:
                    raise BenchError("batched: bursts keep failing: %r" % (e,))
                continue
            t1 = now_ms()
            count += len(results)
            lat.append(int((t1 - t) * 1000))
            self.progress_ms = t1
            if t1 - last_show > 250:
                last_show = t1
                show("batched: %d writes, %.0f writes/s" % (count, count * 1000 / (t1 - t0)))
        return summary("batched", count, (now_ms() - t0) / 1000, lat,
                       {"burst": burst, "bursts": len(lat), "errors": errors})

    def stalled(self):
        return now_ms() - self.progress_ms > STALL_MS

    async def run_mode(self, mode, o, out):
        if mode == "rtt":
            out["rtt"] = await self.rtt(o["duration_s"])
        elif mode == "hop":
            out["hop"] = await self.hop(o["duration_s"])
        elif mode == "sequential":
            out["sequential"] = await self.sequential(o["duration_s"])
        elif mode == "batched":
            out["batched"] = await self.batched(o["duration_s"], o["inflight"])
        else:
            out["pipelined"] = await self.pipelined(o["duration_s"], o["inflight"])

    async def run(self, opts):
        if self.running:
            raise BenchError("a run is already in progress")
        o = check_options(opts)
        d = self.app.runtime
        if d is None or self.app.error:
            raise BenchError("node not running: %s" % (self.app.error,))
        self.running = True
        document.body.setAttribute("data-bench", "running")
        try:
            status = d.status()
            out = {"node": status["node"], "role": status["role"], "leader": status["leader"],
                   "runtime": sys.implementation.name, "options": o,
                   "count_before": self.app.state.count}
            for mode in o["modes"]:
                self.progress_ms = now_ms()
                prof = None
                if o["profile"] and mode != "hop" and self.profiler is None:
                    prof = Profiler(d)
                try:
                    await self.run_mode(mode, o, out)
                finally:
                    if prof is not None:
                        p = prof.stop()
                        if mode in out:
                            out[mode]["profile"] = p
            out["count_after"] = self.app.state.count
            out["role_after"] = d.status()["role"]
            out["driver_stats"] = dict(d.stats)  # a copy: the live ones keep counting
            out["node_stats"] = dict(d.node.stats)
            out["transport_stats"] = dict(self.transport.stats)
            out["side_dropped"] = self.dropped_side
            out["gc"] = gc_cost()
            self.results = out
            document.body.setAttribute("data-bench", "done")
            return out
        except Exception:
            document.body.setAttribute("data-bench", "error")
            raise
        finally:
            self.running = False


def gc_cost():
    """Heap in use and the cost of one full collection: MicroPython's GC
    pauses land on whatever runs when the heap fills, so they belong in the
    picture of where a write's time goes."""
    import gc
    if not hasattr(gc, "mem_alloc"):  # CPython (Pyodide): refcounting does most of it
        return None
    before = gc.mem_alloc()
    t = now_ms()
    gc.collect()
    return {"collect_ms": round(now_ms() - t, 2), "alloc_before": before,
            "threshold": gc.threshold() if hasattr(gc, "threshold") else None,
            "alloc_after": gc.mem_alloc(), "free": gc.mem_free()}


def check_options(opts):
    """Validate run options (JSON object); unknown keys and bad values are
    refused with a clear message, nothing runs."""
    if not isinstance(opts, dict):
        raise BenchError("options must be a JSON object")
    for k in opts:
        if k not in DEFAULTS:
            raise BenchError("unknown option %r (known: %s)" % (k, ", ".join(sorted(DEFAULTS))))
    o = dict(DEFAULTS)
    o.update(opts)
    modes = o["modes"]
    if not isinstance(modes, list) or not modes or not all(m in MODES for m in modes):
        raise BenchError("modes: a non-empty list of %s" % ", ".join(MODES))
    dur = o["duration_s"]
    if isinstance(dur, bool) or not isinstance(dur, (int, float)) or not 0 < dur <= MAX_DURATION_S:
        raise BenchError("duration_s: a number of seconds in (0, %d]" % MAX_DURATION_S)
    k = o["inflight"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_INFLIGHT:
        raise BenchError("inflight: an integer in 1..%d" % MAX_INFLIGHT)
    o["duration_s"] = float(dur)
    if not isinstance(o["profile"], bool):
        raise BenchError("profile: true or false")
    return o


def render(results):
    el("results").textContent = json.dumps(results)
    rows = []
    for mode, label, unit in (("rtt", "data-channel round trips (baseline)", "/s"),
                              ("sequential", "sequential writes", " writes/s"),
                              ("pipelined", "pipelined writes", " writes/s"),
                              ("batched", "batched writes (propose_many)", " writes/s")):
        r = results.get(mode)
        if r:
            rows.append("<tr><td>%s</td><td>%.0f%s</td><td>%.2f</td><td>%.2f</td><td>%d</td></tr>"
                        % (label, r["per_s"], unit, r["p50_ms"] or 0, r["p99_ms"] or 0, r["count"]))
    el("table").innerHTML = "".join(rows)


def expose(b):
    """window.wraftBench: run(optionsJSON) -> Promise of JSON text
    ({"ok": results} or {"error": message}); results(); timeline();
    appliedAt(index) -> performance.now() of this page, or null;
    profileStart() / profileStop() -> JSON of where this page's time went
    (for the windows that do not run the bench: the followers)."""
    as_promise = Function.new("py", "return (...a) => new Promise(resolve => py(resolve, ...a))")
    keep = []

    def run(resolve, text):
        async def go():
            try:
                opts = json.loads(str(text)) if text is not None and str(text) else {}
                out = {"ok": await b.run(opts)}
                render(out["ok"])
            except Exception as e:
                out = {"error": str(e) if isinstance(e, BenchError) else repr(e)}
                el("results").textContent = json.dumps(out)
                show("error: " + out["error"])
            resolve(json.dumps(out))
        asyncio.get_event_loop().create_task(go())

    obj = Object.new()
    p = create_proxy(run)
    keep.append(p)
    obj.run = as_promise(p)
    def profile_start():
        if b.app.runtime is None or b.profiler is not None:
            return False
        b.profiler = Profiler(b.app.runtime)
        return True

    def profile_stop():
        if b.profiler is None:
            return json.dumps(None)
        prof, b.profiler = b.profiler, None
        return json.dumps(prof.stop())

    for name, fn in (("results", lambda: json.dumps(b.results)),
                     ("profileStart", profile_start), ("profileStop", profile_stop),
                     ("timeline", lambda: json.dumps(b.timeline)),
                     ("appliedAt", lambda i: json.dumps(b.first_applied_at(int(i))))):
        p = create_proxy(fn)
        keep.append(p)
        setattr(obj, name, p)
    window.wraftBench = obj
    return keep


app = start(Tally)
bench = Bench(app)
bench.wrap_transport()
app.on_change(bench.on_applied)
_kept = expose(bench)


@when("click", "#run")
def run_from_the_form(event):
    try:
        opts = {"duration_s": float(el("duration").value), "inflight": int(el("inflight").value),
                "modes": [m for m in MODES if el("mode-" + m) and el("mode-" + m).checked]}
    except Exception as e:
        show("error: %r" % (e,))
        return
    window.wraftBench.run(json.dumps(opts))


document.body.setAttribute("data-py-impl", sys.implementation.name)
# page-load marks (performance.now() of this page): Python started running
# this script, and the node is started and the page ready
document.body.setAttribute("data-python-start-ms", str(T_PYTHON_START))
document.body.setAttribute("data-ready-ms", str(performance.now()))
document.body.setAttribute("data-bench", "idle")
