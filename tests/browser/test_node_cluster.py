"""End-to-end: three windows (wraft0/1/2.localhost) run the counter app as a
Raft cluster in headless Chromium, inside scripts/in-netns.

Each node gets its own browser context (its own localStorage) for the whole
test, so a page can be closed and reopened, or reloaded, and find its state.
Every test uses its own cluster name (?cluster=...), so tests never meet on
the shared introducer. Writes are distinct integers; the counter app applies
them in log order, and window.wraft.applied() lists (index, command) pairs.
"""

import json
import time

import pytest

from browser_helpers import MPY_LOAD_MS, PYODIDE_LOAD_MS, wait_until

pytestmark = pytest.mark.browser

ELECT_S = 20  # election timeouts are 1.5-3 s; leave room for page loads


class Cluster:
    def __init__(self, browser, server, name, size=3, query="", load_ms=MPY_LOAD_MS):
        self.server = server
        self.name = name
        self.query = query
        self.load_ms = load_ms
        self.contexts = [browser.new_context() for _ in range(size)]
        self.pages = [None] * size
        self.logs = [[] for _ in range(size)]

    def url(self, i, path="/counter"):
        return "%s%s?cluster=%s%s" % (self.server.base(i), path, self.name, self.query)

    def open(self, i):
        page = self.contexts[i].new_page()
        log = self.logs[i]
        page.on("console", lambda m: log.append("[%s] %s" % (m.type, m.text)))
        page.on("pageerror", lambda e: log.append("[pageerror] %s" % e))
        page.goto(self.url(i))
        page.wait_for_selector("html[data-raft-role]", state="attached", timeout=self.load_ms)
        self.pages[i] = page
        return page

    def close(self, i):
        self.pages[i].close()
        self.pages[i] = None

    def reload(self, i):
        self.pages[i].reload()
        self.pages[i].wait_for_selector("html[data-raft-role]", state="attached", timeout=self.load_ms)

    def alive(self):
        return [i for i, p in enumerate(self.pages) if p is not None]

    def attr(self, i, name):
        return self.pages[i].evaluate("n => document.documentElement.getAttribute(n)", name)

    def role(self, i):
        return self.attr(i, "data-raft-role")

    def status(self, i):
        return json.loads(self.pages[i].evaluate("wraft.status()"))

    def propose(self, i, command):
        return json.loads(self.pages[i].evaluate("c => wraft.propose(c)", json.dumps(command)))

    def propose_many(self, i, commands):
        """Start all proposals at once in page i; returns their outcomes."""
        out = self.pages[i].evaluate(
            "cs => Promise.all(cs.map(c => wraft.propose(c)))", [json.dumps(c) for c in commands])
        assert all(isinstance(x, str) for x in out), out
        return [json.loads(x) for x in out]

    def applied(self, i):
        return json.loads(self.pages[i].evaluate("wraft.applied()"))

    def value(self, i):
        return json.loads(self.pages[i].evaluate("wraft.state()"))

    def one_leader(self, among=None, timeout=ELECT_S):
        """Wait for exactly one leader that every live page follows."""
        among = self.alive() if among is None else among

        def check():
            roles = {i: self.role(i) for i in among}
            leads = [i for i, r in roles.items() if r == "leader"]
            if len(leads) != 1:
                return None
            infos = [self.status(i) for i in among]
            ok = all(s["leader"] == str(leads[0]) and s["quorum"] for s in infos)
            return (leads[0],) if ok else None
        return wait_until(check, timeout=timeout, what="one leader among %s" % among)[0]

    def converged(self, expect_commands, timeout=15):
        """Every live page applied the same commands in the same order,
        including all of expect_commands; returns that order."""
        def check():
            lists = [[c for _, c in self.applied(i)] for i in self.alive()]
            first = lists[0]
            if all(lst == first for lst in lists) and set(expect_commands) <= set(first):
                return first
            return None
        return wait_until(check, timeout=timeout, what="all pages applied the same log")

    def dump(self):
        for i, log in enumerate(self.logs):
            print("----- console of node %d -----" % i)
            print("\n".join(log[-120:]))

    def close_all(self):
        for c in self.contexts:
            c.close()


@pytest.fixture
def make_cluster(browser, request):
    made = []

    def make(server, name, **kw):
        c = Cluster(browser, server, name + "-" + str(int(time.time() * 1000) % 10**8), **kw)
        made.append(c)
        return c
    yield make
    rep = getattr(request.node, "rep_call", None)
    for c in made:
        if rep is None or rep.failed:
            c.dump()
        c.close_all()


def ok_values(outcomes):
    assert all("ok" in o for o in outcomes), outcomes
    return [o["ok"] for o in outcomes]


def start_three(make_cluster, server, name, **kw):
    c = make_cluster(server, name, **kw)
    for i in range(3):
        c.open(i)
    return c


def check_convergence(c):
    c.one_leader()
    writes = {i: [100 * (i + 1) + k for k in range(5)] for i in range(3)}
    for i in range(3):
        ok_values(c.propose_many(i, writes[i]))
    everything = sum(writes.values(), [])
    # A linearizable read on any page sees every acknowledged write at once.
    for i in range(3):
        assert json.loads(c.pages[i].evaluate("wraft.read()")) == {"ok": sum(everything)}
    order = c.converged(everything)
    assert sorted(order) == sorted(everything)  # each write applied exactly once
    assert len({c.value(i) for i in range(3)}) == 1 and c.value(0) == sum(everything)
    # Every page shows the same commit index for automation.
    wait_until(lambda: len({c.attr(i, "data-raft-commit") for i in range(3)}) == 1,
               what="same data-raft-commit")
    return order


def test_cluster_forms_one_leader_and_applies_every_write_in_one_order(server, make_cluster):
    c = start_three(make_cluster, server, "form")
    check_convergence(c)
    roles = sorted(c.role(i) for i in range(3))
    assert roles == ["follower", "follower", "leader"]
    lead = c.one_leader()
    page = c.pages[lead]
    assert page.get_attribute("html", "data-raft-node") == str(lead)
    # The status component shows the cluster, and the app its counter.
    wait_until(lambda: "leader" in page.inner_text("raft-status")
               and "2 of 2" in page.inner_text("raft-status"), what="the status shows the leader")
    assert page.inner_text("#count") == str(c.value(lead))
    # The README's buttons work: a click is a replicated write.
    follower = (lead + 1) % 3
    before = c.value(follower)
    c.pages[follower].click("#inc")
    wait_until(lambda: all(c.value(i) == before + 1 for i in range(3)), what="click replicated")
    # The status redraws at most every 100 ms: wait for it, don't sample it.
    wait_until(lambda: "committed on" in c.pages[follower].inner_text("raft-status"),
               what="the status shows the write committed")
    # A command the app rejects fails clearly and changes nothing.
    out = c.propose(follower, "not a number")
    assert out["error"] == "command_failed", out
    assert ok_values([c.propose(follower, 1)]) == [before + 2]


def test_leader_closed_others_elect_and_commit_then_it_catches_up(server, make_cluster):
    c = start_three(make_cluster, server, "leaderloss")
    lead = c.one_leader()
    acked = [1, 2, 3]
    ok_values(c.propose_many((lead + 1) % 3, acked))
    c.close(lead)
    others = c.alive()
    new = c.one_leader(others)
    assert new != lead
    ok_values([c.propose(others[0], 10), c.propose(others[1], 20)])
    acked += [10, 20]
    c.open(lead)
    order = c.converged(acked)
    assert c.status(lead)["commit"] >= len(acked)
    ok_values([c.propose(lead, 30)])
    c.converged(acked + [30])
    assert order[:3] == [1, 2, 3]


def test_survivor_of_two_closed_commits_nothing_and_shows_it_then_recovers(server, make_cluster):
    c = start_three(make_cluster, server, "minority")
    c.one_leader()
    acked = [5, 6, 7]
    ok_values(c.propose_many(0, acked))
    c.converged(acked)
    survivor = 1
    c.close(0)
    c.close(2)
    wait_until(lambda: c.attr(survivor, "data-raft-readonly") == "true", timeout=ELECT_S,
               what="survivor read-only")
    page = c.pages[survivor]
    assert page.is_disabled("#inc")
    wait_until(lambda: "read-only" in page.inner_text("raft-status"), what="read-only")
    commit = c.status(survivor)["commit"]
    out = c.propose(survivor, 99)  # retried for a while, then refused
    assert "error" in out, out
    assert c.status(survivor)["commit"] == commit
    assert c.attr(survivor, "data-raft-role") != "leader"
    c.open(0)
    c.open(2)
    c.one_leader()
    wait_until(lambda: c.attr(survivor, "data-raft-readonly") == "false", timeout=ELECT_S,
               what="survivor writable again")
    ok_values([c.propose(2, 8)])
    order = c.converged(acked + [8])
    assert order[:3] == acked  # nothing acknowledged was lost


def test_all_pages_reloaded_restore_from_local_storage_and_resume(server, make_cluster):
    c = start_three(make_cluster, server, "reload")
    c.one_leader()
    acked = list(range(1, 13))
    ok_values(c.propose_many(2, acked))
    before = c.converged(acked)
    for i in range(3):
        c.reload(i)
    # Before any new traffic matters, each page rebuilt its state from its log.
    for i in range(3):
        wait_until(lambda i=i: c.value(i) == sum(acked), timeout=10, what="restored state")
        assert [x for _, x in c.applied(i)][:len(before)] == before
    # Commits resume as soon as a majority is connected again (channels of
    # windows reloaded together may take a few reconnect rounds).
    c.one_leader(timeout=45)
    ok_values([c.propose(0, 100)])
    c.converged(acked + [100], timeout=30)


def test_writes_commit_after_the_introducer_stops(introducer, make_cluster):
    c = start_three(make_cluster, introducer, "nointro")
    c.one_leader()
    introducer.stop()
    wait_until(lambda: not any(c.status(i)["introducer_up"] for i in range(3)),
               what="pages notice the introducer is gone")
    ok_values([c.propose(0, 1), c.propose(1, 2), c.propose(2, 3)])
    c.converged([1, 2, 3])


TOOL_PAGE = "/no-such-page"  # a same-origin 404 page: edits localStorage, runs no node


def edit_storage(c, i, script, arg=None):
    """Run script(arg) against node i's localStorage while its app is closed."""
    page = c.contexts[i].new_page()
    page.goto(c.server.base(i) + TOOL_PAGE)
    out = page.evaluate(script, arg)
    page.close()
    return out


def test_damaged_committed_record_refuses_to_start_and_stray_keys_are_ignored(server, make_cluster):
    c = start_three(make_cluster, server, "corrupt")
    c.one_leader()
    ok_values(c.propose_many(0, [1, 2, 3]))
    c.converged([1, 2, 3])
    victim = 2
    c.close(victim)
    prefix = "wraft:%s:%d:" % (c.name, victim)
    # 1. Stray keys that are not records (never read, never deleted): node starts.
    keys = edit_storage(c, victim, """p => {
        const ks = Object.keys(localStorage).filter(k => k.startsWith(p + "log:"));
        localStorage.setItem(p + "log:0001", "deadbeef[1,2,3]");
        localStorage.setItem(p + "log:junk", "x");
        return ks; }""", prefix)
    assert keys, "the node stored log records under its namespace"
    c.open(victim)
    wait_until(lambda: c.role(victim) == "follower", timeout=ELECT_S, what="node with stray keys follows")
    ok_values([c.propose(victim, 4)])
    c.converged([1, 2, 3, 4])
    assert edit_storage(c, victim, "k => localStorage.getItem(k)", prefix + "log:0001") == "deadbeef[1,2,3]"
    # 2. A flipped character in a committed record: refuse, with a clear message.
    c.close(victim)
    edit_storage(c, victim, """k => {
        const v = localStorage.getItem(k);
        localStorage.setItem(k, v.slice(0, -3) + (v.slice(-3, -2) === "7" ? "8" : "7") + v.slice(-2)); }""",
                 prefix + "log:1")
    page = c.open(victim)
    assert c.role(victim) == "offline"
    wait_until(lambda: "refusing to start" in page.inner_text("raft-status"), what="refusing to start")
    assert "refusing to start" in c.attr(victim, "data-raft-error")
    assert page.is_disabled("#inc")
    out = c.propose(victim, 5)
    assert out.get("error") == "halted", out
    # Nothing was destroyed: the damaged record is still there for inspection.
    assert edit_storage(c, victim, "k => localStorage.getItem(k) !== null", prefix + "log:1")
    # The other two carry on.
    ok_values([c.propose(0, 6)])


def test_full_quota_stops_writes_visibly_and_acknowledges_nothing_unstored(server, make_cluster):
    c = start_three(make_cluster, server, "quota")
    lead = c.one_leader()
    ok_values([c.propose(lead, 1)])
    c.converged([1])
    victim = (lead + 1) % 3
    # Fill this origin's localStorage to the last few bytes.
    filled = c.pages[victim].evaluate("""() => {
        let n = 0, size = 1 << 20;
        while (size >= 16) {
            try { localStorage.setItem("junk:" + n, "x".repeat(size)); n++; }
            catch (e) { if (e.name !== "QuotaExceededError") throw e; size >>= 1; }
        }
        return n; }""")
    assert filled > 0
    out = c.propose(victim, 2)  # it must store the entry before acknowledging it
    assert out.get("error") == "halted", out
    wait_until(lambda: c.role(victim) == "offline", what="victim offline")
    wait_until(lambda: "localStorage is full" in c.pages[victim].inner_text("raft-status"), what="localStorage is full")
    assert c.pages[victim].is_disabled("#inc")
    # The other two still form a majority and commit; the victim stays out.
    others = [i for i in range(3) if i != victim]
    c.one_leader(others)
    ok_values([c.propose(others[0], 3)])
    assert c.status(victim)["error"]
    # Freeing space and reloading brings the node back; it catches up.
    c.pages[victim].evaluate("""() => { for (const k of Object.keys(localStorage))
        if (k.startsWith("junk:")) localStorage.removeItem(k); }""")
    c.reload(victim)
    order = c.converged([1, 3])
    # The role attribute is redrawn at most every 100 ms, and a reloaded node
    # whose timer fired before its channels were up shows "candidate" until
    # the leader's next heartbeat: poll it.
    wait_until(lambda: c.role(victim) in ("follower", "leader"), what="victim rejoined as a member")
    assert order.count(1) == 1 and order.count(3) == 1


def test_garbage_on_a_data_channel_is_dropped_counted_and_harmless(server, make_cluster):
    c = start_three(make_cluster, server, "garbage")
    c.one_leader()
    ok_values([c.propose(0, 1)])
    junk = ["", "not json", "[1]", "[2,\"h\",\"0\",\"1\",1,0,0]", "{\"a\":1}", "[1,\"a\",\"0\",\"1\",-1,0,0,[],0]"]
    for text in junk:
        assert c.pages[0].evaluate("a => wraft.sendRaw(a[0], a[1])", ["1", text])
    # Claims to be from node 2 but arrives on node 0's channel.
    assert c.pages[0].evaluate("a => wraft.sendRaw(a[0], a[1])", ["1", "[1,\"h\",\"2\",\"1\",1,0,0]"])
    stats = wait_until(lambda: (lambda s: s if s["node_stats"].get("dropped_malformed", 0) >= len(junk)
                                and s["node_stats"].get("dropped_spoofed", 0) >= 1 else None)(c.status(1)),
                       what="node 1 counted the garbage")
    assert stats["node_stats"]["dropped_malformed"] == len(junk)
    assert stats["error"] is None and stats["running"]
    ok_values([c.propose(1, 2), c.propose(2, 3)])
    c.converged([1, 2, 3])


def test_convergence_under_pyodide(server, make_cluster):
    # Three Pyodide windows starting at once on a busy 2-core host can take a
    # minute to load (~5 s alone); the Raft part is timed from there.
    c = start_three(make_cluster, server, "pyodide", query="&runtime=py",
                    load_ms=max(PYODIDE_LOAD_MS, 120_000))
    assert c.pages[0].evaluate("document.documentElement.dataset.wraftRuntime") == "py"
    check_convergence(c)
