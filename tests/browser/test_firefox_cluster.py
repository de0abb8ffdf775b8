"""Firefox beside Chromium: mixed clusters of the counter app (issue 14).

Windows 0 and 1 are headless Chromium, window 2 is Debian's firefox-esr
(driven over WebDriver BiDi, tests/browser/firefox.py), each its own origin
and storage. Runs inside scripts/in-netns:

    scripts/in-netns .venv/bin/pytest tests/browser/test_firefox_cluster.py -x -q
"""

import time

import pytest

from browser_helpers import PYODIDE_LOAD_MS, wait_until
from firefox import Mix, firefox  # noqa: F401 (fixture)
from test_node_cluster import Cluster, check_convergence, ok_values

pytestmark = pytest.mark.browser
FF = 2  # the Firefox window's node id


class MixedCluster(Cluster):
    """Cluster with windows 0, 1 in Chromium and 2 in Firefox; `extra` adds
    a query to one window's URL (e.g. {2: "&runtime=py"})."""

    def __init__(self, browser, firefox, server, tag, extra=None, **kw):
        name = "%s-%d" % (tag, int(time.time() * 1000) % 10**8)
        super().__init__(Mix([browser, browser, firefox]), server, name, **kw)
        self.extra = extra or {}

    def url(self, i, path="/counter"):
        return super().url(i, path) + self.extra.get(i, "")

    def errors(self):
        return [line for log in self.logs for line in log
                if line.startswith(("[error]", "[pageerror]"))]


@pytest.fixture
def mixed(browser, firefox, server, request):  # noqa: F811 (firefox is a fixture)
    made = []

    def make(tag, **kw):
        c = MixedCluster(browser, firefox, server, tag, **kw)
        made.append(c)
        return c
    yield make
    rep = getattr(request.node, "rep_call", None)
    for c in made:
        if rep is None or rep.failed:
            c.dump()
        else:  # no exception in any window's handlers, in either browser
            assert not c.errors(), c.errors()
        c.close_all()


def user_agents(c):
    return [c.pages[i].evaluate("navigator.userAgent") for i in range(3)]


def test_two_chromium_one_firefox_commit_a_write_from_each(mixed):
    c = mixed("mix")
    for i in range(3):
        c.open(i)
    agents = user_agents(c)
    assert "Firefox/" in agents[FF] and all("Chrome/" in a for a in agents[:FF]), agents
    check_convergence(c)  # writes from each window, read on each, one order


def test_chromium_leader_closes_and_the_cluster_goes_on_with_firefox(mixed):
    c = mixed("mixfail")
    c.open(0)
    c.open(1)
    lead = c.one_leader(among=[0, 1])  # a Chromium leader, before Firefox joins
    c.open(FF)
    assert c.one_leader() == lead
    acked = [1, 2, 3]
    ok_values(c.propose_many(FF, acked))
    c.close(lead)
    survivors = c.alive()
    assert FF in survivors
    new = c.one_leader(survivors)
    assert new != lead
    ok_values([c.propose(survivors[0], 10), c.propose(survivors[1], 20)])
    acked += [10, 20]
    c.converged(acked)
    c.open(lead)  # the old leader comes back and catches up
    order = c.converged(acked)
    assert order[:3] == [1, 2, 3]


def test_firefox_reloads_and_catches_up_from_its_local_storage(mixed):
    c = mixed("mixreload")
    for i in range(3):
        c.open(i)
    c.one_leader()
    first = [1, 2, 3, 4]
    ok_values(c.propose_many(FF, first))
    c.converged(first)
    # Firefox away while the Chromium pair commits more: it catches up.
    c.close(FF)
    more = [10, 20]
    ok_values(c.propose_many(0, more))
    c.open(FF)
    order = c.converged(first + more)
    # Alone (both Chromium windows closed), a reload rebuilds its state from
    # its own localStorage: there is no peer to learn it from.
    c.close(0)
    c.close(1)
    c.reload(FF)
    total = sum(first + more)
    wait_until(lambda: c.value(FF) == total, timeout=10, what="state restored from localStorage")
    assert [x for _, x in c.applied(FF)] == order
    keys = c.pages[FF].evaluate("Object.keys(localStorage).length")
    assert keys > 0
    c.open(0)
    c.open(1)
    c.one_leader(timeout=45)
    ok_values([c.propose(FF, 100)])
    c.converged(first + more + [100], timeout=30)


def test_one_firefox_window_under_pyodide(mixed):
    # Without the ffi.Proxies.handler wrapper every RTCPeerConnection event
    # in this window throws "TypeError: ({}) is not a function" (the fixture
    # fails the test on any page error).
    c = mixed("mixpy", extra={FF: "&runtime=py"}, load_ms=PYODIDE_LOAD_MS)
    for i in range(3):
        c.open(i)
    runtimes = [c.pages[i].evaluate("document.documentElement.dataset.wraftRuntime")
                for i in range(3)]
    assert runtimes == ["mpy", "mpy", "py"], runtimes
    check_convergence(c)
    assert not c.errors(), c.errors()
