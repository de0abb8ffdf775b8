"""Fixtures for the replica tests: a real introducer (python -m signaling's
app) on 127.0.0.1, and ICE host candidates on loopback only, so aiortc peers
in CPython connect with no network (browsers never offer loopback
candidates: tests with Chromium run in scripts/in-netns instead)."""

import asyncio
import time

import pytest

from signaling.app import make_app


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
