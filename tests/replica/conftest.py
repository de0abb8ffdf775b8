"""Fixtures for the replica tests: a real introducer (python -m signaling's
app) on 127.0.0.1, and ICE host candidates on loopback only, so aiortc peers
in CPython connect with no network (browsers never offer loopback
candidates: tests with Chromium run in scripts/in-netns instead)."""

import asyncio
import sys
import time
from pathlib import Path

import pytest

from signaling.app import make_app

# the browser tests' helpers (signaling subprocess, Chromium flags, windows)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from browser_helpers import Introducer  # noqa: E402


@pytest.fixture
async def introducer_url(aiohttp_server):
    from raft.replica.transport import gather_on
    gather_on(["127.0.0.1"])
    srv = await aiohttp_server(make_app(), host="127.0.0.1")
    return "ws://127.0.0.1:%d/ws" % srv.port


async def until(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


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
