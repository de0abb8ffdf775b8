"""Three app windows (wraft0/1/2.localhost), one browser context each, reused
by every test of a module; each test opens them on its own ?cluster= name."""

import itertools
import json
import time

import pytest

from browser_helpers import MPY_LOAD_MS, wait_until

ELECT_S = 20  # election timeouts are 1.5-3 s; leave room for page loads
_names = itertools.count()


def unique_cluster(tag):
    return "%s-%d-%d" % (tag, int(time.time()) % 100000, next(_names))


class Windows:
    def __init__(self, browser, server, size=3):
        self.server = server
        self.contexts = [browser.new_context(viewport={"width": 800, "height": 900})
                         for _ in range(size)]
        self.pages = [c.new_page() for c in self.contexts]
        self.logs = [[] for _ in range(size)]
        for page, log in zip(self.pages, self.logs):
            page.on("console", lambda m, log=log: log.append("[%s] %s" % (m.type, m.text)))
            page.on("pageerror", lambda e, log=log: log.append("[pageerror] %s" % e))
        self.cluster = None

    def url(self, i, path, cluster=None, extra=""):
        return "%s%s?cluster=%s%s" % (self.server.base(i), path, cluster or self.cluster, extra)

    def open(self, path, tag, extra=None, nodes=(0, 1, 2), load_ms=MPY_LOAD_MS):
        """Load `path` in every window on a fresh cluster; wait for a leader
        that every window follows (all writable)."""
        self.cluster = unique_cluster(tag)
        for log in self.logs:
            log.clear()
        for i in nodes:
            self.pages[i].goto(self.url(i, path, extra=(extra or {}).get(i, "")))
        for i in nodes:
            self.pages[i].wait_for_selector("html[data-raft-role]", state="attached",
                                            timeout=load_ms)
        self.wait_writable(nodes)
        return self.pages

    def attr(self, i, name):
        return self.pages[i].evaluate("n => document.documentElement.getAttribute(n)", name)

    def status(self, i):
        return json.loads(self.pages[i].evaluate("wraft.status()"))

    def wait_writable(self, nodes=(0, 1, 2), timeout=ELECT_S):
        def check():
            roles = [self.attr(i, "data-raft-role") for i in nodes]
            ro = [self.attr(i, "data-raft-readonly") for i in nodes]
            return roles.count("leader") == 1 and ro == ["false"] * len(nodes) and roles
        return wait_until(check, timeout=timeout, what="one leader, every window writable")

    def state(self, i):
        return json.loads(self.pages[i].evaluate("wraft.state()"))

    def converged(self, timeout=15, nodes=(0, 1, 2)):
        """Every window's replicated state is the same; returns it."""
        def check():
            states = [self.state(i) for i in nodes]
            return all(s == states[0] for s in states) and [states[0]]
        return wait_until(check, timeout=timeout, what="all windows in the same state")[0]

    def leave(self, nodes):
        for i in nodes:
            self.pages[i].goto("about:blank")

    def errors(self):
        """Console errors and uncaught exceptions (Python tracebacks land here)."""
        return [line for log in self.logs for line in log
                if line.startswith(("[error]", "[pageerror]"))]

    def dump(self):
        for i, log in enumerate(self.logs):
            print("----- console of window %d (cluster %s) -----" % (i, self.cluster))
            print("\n".join(log[-150:]))

    def close(self):
        for c in self.contexts:
            c.close()


# Fixtures shared by the app test files (import them there): one set of
# windows per module, and their consoles dumped when a test fails.
@pytest.fixture(scope="module")
def win(browser, server):
    w = Windows(browser, server)
    yield w
    w.close()


@pytest.fixture(autouse=True)
def dump_on_failure(request, win):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        win.dump()
    else:
        assert not win.errors(), win.errors()  # no exception in any window's handlers
