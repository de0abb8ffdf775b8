"""Suite-wide: test order, the browser guard, and the suite's short names for
the wraft pytest plugin's fixtures (wraft/testing.py: servers, browsers,
clusters of windows; the suite's settings are in pyproject.toml).

Playwright's sync API keeps an asyncio event loop running in the main thread
for as long as its session-scoped browser lives, and pytest-asyncio cannot
start its own loop inside a running one. So the browser tests run last, after
every asyncio test (tests/signaling, ...), in one pytest run.

Browser tests run only inside the private network namespace of
scripts/in-netns (WebRTC needs it, and it keeps all traffic on this machine):
    scripts/in-netns .venv/bin/pytest tests/browser -x -q
Elsewhere they are skipped, or fail when WRAFT_REQUIRE_BROWSER=1 (CI).
"""

import os

import pytest

from wraft import chromium


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def browser_unavailable_reason():
    if os.environ.get("WRAFT_IN_NETNS") != "1":
        return "browser tests run only inside scripts/in-netns (WRAFT_IN_NETNS != 1)"
    return chromium.find()[1]


def require_browser(reason=None):
    """Skip outside the namespace; fail instead when WRAFT_REQUIRE_BROWSER=1 (CI)."""
    reason = reason or browser_unavailable_reason()
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
def server(wraft_server):
    """One server for the whole session (do not stop it)."""
    return wraft_server


@pytest.fixture
def start_introducer(wraft_start_server):
    """start_introducer(*args) -> a started server of this test's own (extra CLI args),
    which the test may stop() and start() again; all are stopped at teardown."""
    return wraft_start_server


@pytest.fixture
def introducer(start_introducer):
    """A plain server of this test's own, for tests that stop and restart it."""
    return start_introducer()


@pytest.fixture(scope="session")
def browser(wraft_browser):
    return wraft_browser


@pytest.fixture(scope="session")
def firefox(wraft_firefox):
    return wraft_firefox
