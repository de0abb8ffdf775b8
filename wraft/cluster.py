"""A cluster of app windows under test: window i is node i at
http://wraft<i>.localhost:<port><path>?cluster=<name>, each in a browser
context of its own (its own origin, its own localStorage), driven through
Playwright (or anything with Playwright's new_context/new_page/evaluate:
wraft.firefox.Firefox, Mix). Every helper talks to the page through
window.wraft (raft/browser/automation.py) and the <html data-raft-*>
attributes, and every wait has a deadline whose failure names the state of
every window (describe()).

    c = Cluster(browser, server, "/counter", size=3)
    c.open_all()                 # or c.open(i) one by one
    leader = c.leader()          # the one leader every window follows
    c.propose(leader, 1)         # {"ok": result} | {"error": code}
    c.wait_committed(5)
    c.partition(0, [1, 2]); c.heal()
    c.close(2); c.reopen(2)      # the window's storage survives
"""

import itertools
import json
import time
from pathlib import Path

MPY_LOAD_MS = 15_000
PYODIDE_LOAD_MS = 60_000  # ~5 s alone; 30 s+ when the machine is busy
ELECT_S = 25  # election timeouts are 1.5-3 s; leave room for page loads on 2 busy cores
LOADED = "html[data-raft-role]"  # the status panel drew once: the page's Python runs
_names = itertools.count()
OPEN = []  # clusters not closed yet

# every window's status in one call, whatever state the page is in
_STATUS_JS = """() => { try { return window.wraft ? wraft.status() : null; }
                        catch (e) { return JSON.stringify({app_error: String(e)}); } }"""


def wait_until(fn, timeout=15.0, interval=0.1, what="condition", describe=None):
    """Poll fn() until it returns a truthy value; that value is returned. On
    timeout: AssertionError with the last value and describe()'s text."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    text = "timed out after %ss waiting for %s; last: %r" % (timeout, what, last)
    if describe is not None:
        text += "\n" + describe()
    raise AssertionError(text)


def unique_name(tag):
    return "%s-%d-%d" % (tag, int(time.time()) % 100000, next(_names))


class Cluster:
    """Windows 0..size-1 of one app on one cluster name (more windows, e.g.
    node 5 of a growing cluster, open with open(5)). `extra` adds a query to
    one window's URL ({2: "&runtime=py"}); `query` to every window's."""

    def __init__(self, browser, server, path="/", size=3, name=None, tag=None, query="",
                 extra=None, load_ms=MPY_LOAD_MS, context_options=None):
        self.browser = browser
        self.server = server
        self.path = path
        self.size = size
        self.name = name or unique_name(tag or path.strip("/").replace("/", ".") or "index")
        self.query = query
        self.extra = dict(extra or {})
        self.load_ms = load_ms
        self.context_options = dict(context_options or {})
        self.pages = [None] * size
        self.contexts = [None] * size
        self.logs = [[] for _ in range(size)]
        self.blocked = {}  # node -> peers its messages do not reach
        OPEN.append(self)  # for failure reports (wraft/testing.py)

    @property
    def cluster(self):  # the cluster name, as the pages' ?cluster= has it
        return self.name

    # ---- windows ----------------------------------------------------------
    def _grow(self, i):
        while len(self.pages) <= i:
            self.pages.append(None)
            self.contexts.append(None)
            self.logs.append([])

    def url(self, i, path=None, extra=None):
        return "%s%s?cluster=%s%s%s" % (self.server.base(i), path or self.path, self.name,
                                        self.query, self.extra.get(i, "") if extra is None else extra)

    def context(self, i):
        """Window i's browser context (made on first use; kept when the window closes)."""
        self._grow(i)
        if self.contexts[i] is None:
            self.contexts[i] = self.browser.new_context(**self.context_options)
        return self.contexts[i]

    def open(self, i, wait=True, wait_for=LOADED):
        """Open window i (a new page in its context, so its storage is
        kept); wait until its Python runs."""
        page = self.context(i).new_page()
        log = self.logs[i]
        page.on("console", lambda m: log.append("[%s] %s" % (m.type, m.text)))
        page.on("pageerror", lambda e: log.append("[pageerror] %s" % e))
        self.pages[i] = page
        page.goto(self.url(i))
        if wait:
            page.wait_for_selector(wait_for, state="attached", timeout=self.load_ms)
            self._isolate(i)  # a reopened window stays cut off
        return page

    reopen = open

    def open_all(self, nodes=None, wait_for=LOADED):
        """Open every window (all of them first, then wait: they load side by side)."""
        nodes = range(self.size) if nodes is None else nodes
        pages = [self.open(i, wait=False) for i in nodes]
        for page in pages:
            page.wait_for_selector(wait_for, state="attached", timeout=self.load_ms)
        return pages

    def start(self, path=None, tag=None, extra=None, nodes=None, load_ms=None):
        """The open windows (or fresh ones) on a new cluster name: navigate
        each, then wait for one leader that every window follows."""
        if path is not None:
            self.path = path
        self.name = unique_name(tag or self.path.strip("/").replace("/", ".") or "index")
        self.extra = dict(extra or {})
        self.blocked = {}
        nodes = list(range(self.size) if nodes is None else nodes)
        for i in nodes:
            self._grow(i)
            self.logs[i].clear()
            if self.pages[i] is None:
                self.open(i, wait=False)
            else:
                self.pages[i].goto(self.url(i))
        for i in nodes:
            self.pages[i].wait_for_selector(LOADED, state="attached", timeout=load_ms or self.load_ms)
        self.wait_writable(nodes)
        return [self.pages[i] for i in nodes]

    def close(self, i):
        """Close window i (as a user closes a tab); its storage stays."""
        self.pages[i].close()
        self.pages[i] = None

    def forget(self, i):
        """Close window i and its browser context: its storage is gone, and
        the next open(i) starts from nothing."""
        if self.pages[i] is not None:
            self.close(i)
        if self.contexts[i] is not None:
            self.contexts[i].close()
            self.contexts[i] = None

    def reload(self, i):
        self.pages[i].reload()
        self.pages[i].wait_for_selector(LOADED, state="attached", timeout=self.load_ms)
        self._isolate(i)

    def leave(self, nodes):
        """Navigate windows away (the page ends, the window stays)."""
        for i in nodes:
            self.pages[i].goto("about:blank")

    def alive(self):
        return [i for i, p in enumerate(self.pages) if p is not None]

    def close_all(self):
        for ctx in self.contexts:
            if ctx is not None:
                try:
                    ctx.close()
                except Exception:
                    pass
        self.pages = [None] * len(self.pages)
        self.contexts = [None] * len(self.contexts)
        if self in OPEN:
            OPEN.remove(self)

    # ---- one window, through window.wraft ---------------------------------
    def attr(self, i, name):
        return self.pages[i].evaluate("n => document.documentElement.getAttribute(n)", name)

    def role(self, i):
        return self.attr(i, "data-raft-role")

    def status(self, i):
        return json.loads(self.pages[i].evaluate("wraft.status()"))

    def state(self, i):
        """The app state's snapshot() in window i."""
        return json.loads(self.pages[i].evaluate("wraft.state()"))

    def applied(self, i):
        """Recent [index, command] pairs applied in window i."""
        return json.loads(self.pages[i].evaluate("wraft.applied()"))

    def commit(self, i):
        return int(self.attr(i, "data-raft-commit") or 0)

    def propose(self, i, command):
        """Replicate `command` from window i: {"ok": apply's result} or {"error": code}."""
        return json.loads(self.pages[i].evaluate("c => wraft.propose(c)", json.dumps(command)))

    def propose_many(self, i, commands):
        """Start all proposals at once in window i; returns their outcomes."""
        out = self.pages[i].evaluate(
            "cs => Promise.all(cs.map(c => wraft.propose(c)))", [json.dumps(c) for c in commands])
        return [json.loads(x) for x in out]

    def read(self, i):
        """Linearizable read in window i: {"ok": state snapshot} or {"error": code}."""
        return json.loads(self.pages[i].evaluate("wraft.read()"))

    def change(self, i, op, target):
        """Membership change from window i: {"ok": config} or {"error", "reason"}."""
        return json.loads(self.pages[i].evaluate("([o, t]) => wraft.changeMembership(o, t)",
                                                 [op, str(target)]))

    def click_change(self, i, op, target, timeout=40):
        """Click the op's button for `target` in window i's status panel,
        confirm, and return (question, outcome kind, outcome text)."""
        page = self.pages[i]
        page.click('raft-status [data-raft-action="%s"][data-raft-target="%s"]' % (op, target),
                   timeout=20_000)
        question = page.wait_for_selector("raft-status [data-raft-question]",
                                          timeout=5_000).inner_text()
        page.click('raft-status [data-raft-action="confirm"]', timeout=5_000)
        el = page.wait_for_selector("raft-status [data-raft-outcome]", timeout=timeout * 1000)
        kind = el.get_attribute("data-raft-outcome")
        text = el.query_selector("[data-raft-outcome-text]").inner_text()
        page.click('raft-status [data-raft-action="dismiss"]', timeout=5_000)
        return question, kind, text

    # ---- partitions -------------------------------------------------------
    def partition(self, a, b):
        """Cut every message between the windows of `a` and those of `b`
        (a node or a list of nodes), both ways; the channels stay up, so to
        each side the other just goes silent. heal() undoes every cut."""
        side_a = [a] if isinstance(a, int) else list(a)
        side_b = [b] if isinstance(b, int) else list(b)
        for x in side_a:
            for y in side_b:
                self.blocked.setdefault(x, set()).add(y)
                self.blocked.setdefault(y, set()).add(x)
        for i in set(side_a) | set(side_b):
            self._isolate(i)

    def heal(self):
        nodes = list(self.blocked)
        self.blocked = {}
        for i in nodes:
            self._isolate(i, force=True)

    def _isolate(self, i, force=False):
        peers = sorted(str(p) for p in self.blocked.get(i, ()))
        if (peers or force) and i < len(self.pages) and self.pages[i] is not None:
            ok = self.pages[i].evaluate("p => wraft.isolate(p)", json.dumps(peers))
            assert ok, "window %d cannot isolate (its node is not running)" % i

    # ---- waits over the whole cluster -------------------------------------
    def leader(self, among=None, timeout=ELECT_S):
        """Wait for exactly one leader among `among` (default: every open
        window) that all of them follow, each able to write; returns its node."""
        among = self.alive() if among is None else list(among)

        def check():
            infos = {i: self.status(i) for i in among}
            leads = [i for i, s in infos.items() if s.get("role") == "leader"]
            if len(leads) != 1:
                return None
            ok = all(s.get("leader") == str(leads[0]) and s.get("quorum") for s in infos.values())
            return (leads[0],) if ok else None
        return wait_until(check, timeout=timeout, what="one leader among windows %s" % among,
                          describe=self.describe)[0]

    one_leader = leader

    def wait_writable(self, nodes=None, timeout=ELECT_S):
        """One leader and every one of `nodes` writable, from the <html> attributes."""
        nodes = self.alive() if nodes is None else list(nodes)

        def check():
            roles = [self.attr(i, "data-raft-role") for i in nodes]
            ro = [self.attr(i, "data-raft-readonly") for i in nodes]
            return roles.count("leader") == 1 and ro == ["false"] * len(nodes) and roles
        return wait_until(check, timeout=timeout, what="one leader, every window writable",
                          describe=self.describe)

    def wait_committed(self, index, nodes=None, timeout=15):
        """Every one of `nodes` (default: the open windows) has committed
        `index`; returns their commit indexes."""
        nodes = self.alive() if nodes is None else list(nodes)

        def check():
            commits = [self.commit(i) for i in nodes]
            return all(c >= index for c in commits) and commits
        return wait_until(check, timeout=timeout, what="commit index %d on windows %s"
                          % (index, nodes), describe=self.describe)

    def wait_attr(self, nodes, name, value, timeout=20):
        # The status is redrawn at most every 100 ms: poll.
        wait_until(lambda: all(self.attr(i, name) == value for i in nodes), timeout=timeout,
                   what="%s=%r on %s" % (name, value, list(nodes)), describe=self.describe)

    def converged(self, timeout=15, nodes=None):
        """Every one of `nodes` has the same app state; returns it."""
        nodes = self.alive() if nodes is None else list(nodes)

        def check():
            states = [self.state(i) for i in nodes]
            return all(s == states[0] for s in states) and [states[0]]
        return wait_until(check, timeout=timeout, what="the same state in windows %s" % nodes,
                          describe=self.describe)[0]

    def same_log(self, expect_commands, timeout=15):
        """Every open window applied the same commands in the same order,
        all of expect_commands among them; returns that order."""
        def check():
            lists = [[c for _, c in self.applied(i)] for i in self.alive()]
            first = lists[0]
            if all(lst == first for lst in lists) and set(expect_commands) <= set(first):
                return first
            return None
        return wait_until(check, timeout=timeout, what="every window applied the same log",
                          describe=self.describe)

    # ---- when something fails ---------------------------------------------
    def errors(self):
        """Console errors and uncaught exceptions of every window."""
        return [line for log in self.logs for line in log
                if line.startswith(("[error]", "[pageerror]"))]

    def describe(self):
        """Every window's role, term, leader, commit, applied, peers and error, now."""
        rows = [("node", "role", "term", "leader", "commit", "applied", "peers", "error")]
        for i in range(len(self.pages)):
            page = self.pages[i]
            if page is None:
                if self.contexts[i] is not None:
                    rows.append((str(i), "(closed)", "", "", "", "", "", ""))
                continue
            try:
                raw = page.evaluate(_STATUS_JS)
                s = json.loads(raw) if raw else {}
            except Exception as e:  # a crashed or navigating page
                s = {"app_error": "no status: %s" % str(e).splitlines()[0][:80]}
            if not s:
                rows.append((str(i), "(no window.wraft)", "", "", "", "", "", ""))
                continue
            blocked = self.blocked.get(i)
            peers = ",".join(s.get("peers") or []) + (
                " cut:%s" % ",".join(str(p) for p in sorted(blocked)) if blocked else "")
            rows.append((str(i), str(s.get("role", "?")), str(s.get("term", "")),
                         str(s.get("leader")), str(s.get("commit", "")), str(s.get("applied", "")),
                         peers, str(s.get("error") or s.get("app_error") or "")))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines = ["cluster %s (%s, %s):" % (self.name, self.path,
                                           getattr(self.server, "base", lambda i: "?")("N"))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    def screenshots(self, directory):
        """A PNG of every open window in `directory`; returns the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in self.alive():
            path = directory / ("%s-window%d.png" % (self.name, i))
            try:
                self.pages[i].screenshot(path=str(path), full_page=True)
                paths.append(path)
            except Exception:
                pass  # a window that cannot draw: its console says why
        return paths

    def console(self, lines=150):
        out = []
        for i, log in enumerate(self.logs):
            if log:
                out.append("----- console of window %d (cluster %s) -----" % (i, self.name))
                out += log[-lines:]
        return "\n".join(out)

    def dump(self):
        print(self.describe())
        print(self.console())
