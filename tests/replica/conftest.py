"""Fixtures for the replica tests: a real introducer (python -m signaling's
app) on 127.0.0.1, and ICE host candidates on loopback only, so aiortc peers
in CPython connect with no network (Chromium offers loopback candidates only
with wraft/netns.py's loopback mode: tests with Chromium run in scripts/in-netns)."""

import sys
import threading
from pathlib import Path

import pytest

from signaling.app import make_app

# the browser tests' helpers (signaling subprocess, Chromium flags)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from browser_helpers import CHROMIUM, CHROMIUM_FLAGS, Introducer  # noqa: E402


@pytest.fixture
def in_browser():
    """in_browser(body): body(browser) in a thread of its own, with its own
    Playwright and Chromium. tests/browser's session-wide Playwright keeps
    its asyncio loop running in the main thread, where a second sync
    Playwright cannot start; one thread holds one."""
    def run(body, timeout=600):
        from playwright.sync_api import sync_playwright
        box = {}

        def main():
            try:
                with sync_playwright() as p:
                    b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=CHROMIUM_FLAGS)
                    try:
                        body(b)
                    finally:
                        b.close()
            except BaseException as e:  # re-raised in the test's thread
                box["error"] = e
        t = threading.Thread(target=main)
        t.start()
        t.join(timeout)
        assert not t.is_alive(), "browser scenario hung"
        if "error" in box:
            raise box["error"]
    return run


@pytest.fixture
async def introducer_url(aiohttp_server):
    from raft.replica.transport import gather_on
    gather_on(["127.0.0.1"])
    srv = await aiohttp_server(make_app(), host="127.0.0.1")
    return "ws://127.0.0.1:%d/ws" % srv.port


@pytest.fixture
def signaling(tmp_path):
    """`python -m signaling` on a free 127.0.0.1 port (this test's own)."""
    srv = Introducer(tmp_path)
    srv.start()
    srv.ws = "ws://127.0.0.1:%d/ws" % srv.port
    yield srv
    srv.stop()


@pytest.fixture
def start_signaling(tmp_path):
    """start_signaling(*args): more servers of this test's own (extra CLI args)."""
    started = []

    def _start(*args):
        srv = Introducer(tmp_path, args=args)
        srv.start()
        srv.ws = "ws://127.0.0.1:%d/ws" % srv.port
        started.append(srv)
        return srv
    yield _start
    for srv in started:
        srv.stop()
