"""pytest plugin for WRaft apps (entry point `pytest11`, loaded whenever the
package is installed): Playwright checks of an app's pages in a few lines.

    def test_counter(wraft_cluster):
        cluster = wraft_cluster("/counter", size=3)   # 3 windows, 3 origins
        leader = cluster.leader()
        assert cluster.propose(leader, 1) == {"ok": 1}
        cluster.wait_committed(cluster.commit(leader))
        assert [cluster.state(i) for i in range(3)] == [1, 1, 1]

Fixtures
  wraft_cluster(path, size=3, open=True, **Cluster options) -> wraft.cluster.Cluster:
      one window per node, each its own origin and browser context; closed
      at the end of the test. See wraft/cluster.py for its helpers (leader,
      wait_committed, close, reopen, partition, heal, state, propose, ...).
  wraft_server    the WRaft server serving the framework and your pages, on a
                  free loopback port, for the session (.url(path, node), .base(node))
  wraft_start_server(*args) -> a server of the test's own with more options
  wraft_browser   headless Chromium (Playwright), for the session
  wraft_firefox   headless Firefox ESR over WebDriver BiDi (wraft.firefox), for the session
  wraft_network   where they run (wraft/netns.py): inside, netns or loopback
  wraft_pages     the folders of pages the servers serve (ini wraft_pages)

Settings (pytest.ini / pyproject [tool.pytest.ini_options], or the command line)
  wraft_pages = DIR ...   the folders whose files are served as pages (default:
                          the rootdir); DIR/<name>.html is at /<name>
  wraft_net = auto|inside|netns|loopback  (--wraft-net, WRAFT_NET)
  wraft_unavailable = fail|skip   where no browser can run (WRAFT_REQUIRE_BROWSER=1: fail)
  --wraft-artifacts DIR   where failure screenshots go (default: pytest's temp dir)
  WRAFT_CHROMIUM          the Chromium to drive (default: found on the PATH; wraft/chromium.py)

When a test fails, the report gets a "wraft" section: every open window's
role, term, leader, commit, applied and peers at that moment, the paths of a
screenshot of each window, and the tail of each window's console.
"""

import os
import warnings
from pathlib import Path

import pytest

from wraft import cluster as cluster_mod
from wraft.cluster import Cluster

BROWSER_FIXTURES = {"wraft_cluster", "wraft_browser", "wraft_firefox", "wraft_server",
                    "wraft_start_server"}


def pytest_addoption(parser):
    group = parser.getgroup("wraft", "WRaft app tests")
    group.addoption("--wraft-net", choices=("auto", "inside", "netns", "loopback"), default=None,
                    help="where browsers and servers run (default: ini wraft_net, WRAFT_NET, auto)")
    group.addoption("--wraft-artifacts", default=None, metavar="DIR",
                    help="directory for screenshots of failed tests' windows")
    parser.addini("wraft_pages", "folders whose files the test server serves as pages",
                  type="paths", default=[])
    parser.addini("wraft_net", "auto | inside | netns | loopback", default="")
    parser.addini("wraft_unavailable", "fail (default) or skip the tests that need a browser "
                  "where none can run (WRAFT_REQUIRE_BROWSER=1: always fail)", default="fail")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    # Playwright's sync API keeps an asyncio loop running in the main thread
    # while its browser lives; asyncio tests (pytest-asyncio) cannot start
    # theirs inside it, so the browser tests run after them.
    items.sort(key=lambda item: bool(BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))))


def _unavailable(request, message):
    """No browser can run here: fail with what to do (or skip, if asked)."""
    if (request.config.getini("wraft_unavailable") == "skip"
            and os.environ.get("WRAFT_REQUIRE_BROWSER") != "1"):
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def wraft_network(request):
    from wraft.netns import NetworkError, open_network
    asked = request.config.getoption("--wraft-net") or request.config.getini("wraft_net") or None
    try:
        net = open_network(asked)
    except NetworkError as e:
        _unavailable(request, "wraft: cannot run the browsers: %s" % e)
    if net.mode == "loopback":
        warnings.warn(pytest.PytestWarning("wraft: browsers run without a private network "
                                           "namespace: " + net.why))
    yield net
    net.close()


@pytest.fixture(scope="session")
def wraft_pages(request):
    pages = request.config.getini("wraft_pages") or [request.config.rootpath]
    missing = [str(p) for p in pages if not Path(p).is_dir()]
    if missing:
        pytest.fail("wraft_pages: no such folder: %s" % ", ".join(missing), pytrace=False)
    return [Path(p) for p in pages]


@pytest.fixture(scope="session")
def wraft_server(tmp_path_factory, wraft_pages, wraft_network):
    """The WRaft server for the session (do not stop it)."""
    from wraft.server import Server
    srv = Server(tmp_path_factory.mktemp("wraft-server"), pages=wraft_pages,
                 prefix=wraft_network.prefix)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def wraft_start_server(tmp_path, wraft_pages, wraft_network):
    """wraft_start_server(*args, program=None) -> a started server of this
    test's own (extra command-line options; program: a test double's script
    instead of `wraft serve`), which the test may stop() and start() again."""
    from wraft.server import Server
    started = []

    def start(*args, program=None):
        srv = Server(tmp_path, args=args, pages=wraft_pages, prefix=wraft_network.prefix,
                     program=program)
        started.append(srv)
        return srv.start()
    yield start
    for srv in started:
        srv.stop()


class GrantingBrowser:
    """A Playwright browser whose every new context holds `permissions`
    (loopback mode: Chromium offers loopback candidates only to pages that
    may capture media)."""

    def __init__(self, browser, permissions):
        self._browser = browser
        self._permissions = permissions

    def new_context(self, **options):
        ctx = self._browser.new_context(**options)
        ctx.grant_permissions(self._permissions)
        return ctx

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(scope="session")
def wraft_browser(request, wraft_network, tmp_path_factory):
    from wraft import chromium
    path, problem = chromium.find()
    if path is None:
        _unavailable(request, "wraft: " + problem)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable(request, "wraft: Playwright is missing: install this package with its "
                    "[testing] extra (pytest, playwright, websockets)")
    executable = wraft_network.wrap(path, tmp_path_factory.mktemp("wraft-chromium"))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True,
                              args=chromium.FLAGS + wraft_network.chromium_flags)
        yield GrantingBrowser(b, wraft_network.permissions) if wraft_network.permissions else b
        b.close()


@pytest.fixture(scope="session")
def wraft_firefox(request, wraft_network, tmp_path_factory):
    """One headless firefox-esr for the session; new_context() per window."""
    from wraft.firefox import Firefox, unavailable_reason
    reason = unavailable_reason()
    if reason is not None:
        _unavailable(request, "wraft: " + reason)
    ff = Firefox(tmp_path_factory.mktemp("wraft-firefox"), prefs=wraft_network.firefox_prefs,
                 prefix=wraft_network.prefix).start()
    yield ff
    ff.close()


@pytest.fixture
def wraft_cluster(wraft_browser, wraft_server):
    """wraft_cluster(path, size=3, open=True, browser=None, server=None, **options)
    -> Cluster with its windows open (unless open=False); all are closed at
    the end of the test."""
    made = []

    def make(path="/", size=3, open=True, browser=None, server=None, **options):
        c = Cluster(browser or wraft_browser, server or wraft_server, path, size, **options)
        made.append(c)
        if open:
            c.open_all()
        return c
    yield make
    for c in made:
        c.close_all()


# ---- failure reports ------------------------------------------------------

def _artifacts_dir(item):
    asked = item.config.getoption("--wraft-artifacts")
    if asked:
        return Path(asked)
    factory = getattr(item.config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else Path(os.environ.get("TMPDIR", "/tmp"))
    return base / "wraft-failures"


def failure_report(item):
    """The text of the "wraft" report section: every open cluster now."""
    out = []
    for c in list(cluster_mod.OPEN):
        try:
            out.append(c.describe())
            shots = c.screenshots(_artifacts_dir(item) / item.name.replace("/", "_")[:120])
            if shots:
                out.append("screenshots:\n" + "\n".join("  %s" % p for p in shots))
            console = c.console(lines=60)
            if console:
                out.append(console)
        except Exception as e:  # never hide the test's own failure
            out.append("(cannot describe cluster %s: %r)" % (c.name, e))
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("call", "setup") and cluster_mod.OPEN:
        text = failure_report(item)
        if text:
            rep.sections.append(("wraft", text))
