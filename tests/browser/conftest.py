"""Fixtures for end-to-end tests in headless Chromium.

Browser tests run only inside the private network namespace of
scripts/in-netns (WebRTC needs it, and it keeps all traffic on this machine):
    scripts/in-netns .venv/bin/pytest tests/browser -x -q
Elsewhere they are skipped, or fail when WRAFT_REQUIRE_BROWSER=1 (CI).
Each window is its own origin: http://wraft<N>.localhost:<port>/...
"""

import os

import pytest

from browser_helpers import CHROMIUM, CHROMIUM_FLAGS, MPY_LOAD_MS, Introducer, test_site


def browser_unavailable_reason():
    if os.environ.get("WRAFT_IN_NETNS") != "1":
        return "browser tests run only inside scripts/in-netns (WRAFT_IN_NETNS != 1)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing"
    return None


def require_browser():
    """Skip outside the namespace; fail instead when WRAFT_REQUIRE_BROWSER=1 (CI)."""
    reason = browser_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("WRAFT_REQUIRE_BROWSER") == "1":
        pytest.fail("WRAFT_REQUIRE_BROWSER=1 but " + reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _browser_guard(request):
    if request.node.get_closest_marker("browser") is not None:
        require_browser()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site the test servers serve: the apps plus the test pages."""
    return test_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="session")
def server(tmp_path_factory, site):
    """One introducer/web server for the whole session (do not stop it)."""
    require_browser()
    srv = Introducer(tmp_path_factory.mktemp("server"), root=site)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def start_introducer(tmp_path, site):
    """start_introducer(*args) -> a started server of this test's own (extra CLI args),
    which the test may stop() and start() again; all are stopped at teardown."""
    started = []

    def _start(*args, program=None):
        srv = Introducer(tmp_path, args=args, root=site, program=program)
        started.append(srv)
        srv.start()
        return srv

    yield _start
    for srv in started:
        srv.stop()


@pytest.fixture
def introducer(start_introducer):
    """A plain server of this test's own, for tests that stop and restart it."""
    return start_introducer()


@pytest.fixture(scope="session")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


class Window:
    """One page with its console captured."""

    def __init__(self, page, name):
        self.page = page
        self.name = name
        self.console = []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def errors(self):
        return [line for line in self.console if line.startswith(("[error]", "[pageerror]"))]


@pytest.fixture
def open_window(browser, request):
    """open_window(url, wait_for=None, timeout=, record_requests=None, record_headers=None)
    -> Window; record_requests gets each request's URL, record_headers (url, headers);
    each call gets a fresh browser context (so fresh localStorage).

    On failure the console of every window is printed.
    """
    contexts, windows = [], []

    def _open(url, wait_for=None, timeout=MPY_LOAD_MS, record_requests=None, record_headers=None):
        ctx = browser.new_context()
        contexts.append(ctx)
        w = Window(ctx.new_page(), url)
        windows.append(w)
        if record_requests is not None:  # a list that gets every request URL
            w.page.on("request", lambda r: record_requests.append(r.url))
        if record_headers is not None:
            w.page.on("request", lambda r: record_headers.append((r.url, dict(r.headers))))
        w.page.goto(url)
        if wait_for:
            w.page.wait_for_selector(wait_for, timeout=timeout, state="attached")
        return w

    yield _open
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        for w in windows:
            print(f"----- console of {w.name} -----")
            print("\n".join(w.console[-200:]))
    for ctx in contexts:
        ctx.close()
