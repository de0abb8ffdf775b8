"""Fixtures for the replica tests: a real introducer (python -m signaling's
app) on 127.0.0.1, and ICE host candidates on loopback only, so aiortc peers
in CPython connect with no network (browsers never offer loopback
candidates: tests with Chromium run in scripts/in-netns instead)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from signaling.app import make_app

# the browser tests' helpers (signaling subprocess, Chromium flags, windows)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from browser_helpers import Introducer  # noqa: E402

# Chromium fixtures for the end-to-end tests (browser marker): the same as
# tests/browser's (scripts/in-netns only; skipped or failed elsewhere).
_spec = importlib.util.spec_from_file_location(
    "browser_conftest", Path(__file__).resolve().parents[1] / "browser" / "conftest.py")
_browser_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_browser_conftest)
browser = _browser_conftest.browser
server = _browser_conftest.server
_browser_guard = _browser_conftest._browser_guard
pytest_runtest_makereport = _browser_conftest.pytest_runtest_makereport


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
