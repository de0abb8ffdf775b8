"""raft/replica/transport.py between CPython peers over a real introducer:
the browser transport's rules (who offers, asks, replacement, keepalive,
limits, bad signals), over real aiortc data channels on loopback."""

import asyncio
import json
import os
import signal
import sys

import pytest

from raft.replica import transport as tr
from raft.replica.transport import MessageTooLarge, Transport, join_auth, parse_candidate

from replica_helpers import until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Peer:
    def __init__(self, url, node, cluster="c", **kw):
        self.got = []
        self.events = []
        self.t = Transport(cluster, node, on_message=lambda p, m: self.got.append((p, m)),
                           on_peer=lambda p, up: self.events.append((p, up)), ws_url=url, **kw)
        self.t.start()


async def test_two_peers_connect_exchange_and_reconnect_after_a_restart(introducer_url):
    a, b = Peer(introducer_url, "1"), Peer(introducer_url, "2")
    await until(lambda: a.t.peers_up() == ["2"] and b.t.peers_up() == ["1"], what="channel up")
    assert a.t.stats["offers"] >= 1 and b.t.stats["offers"] == 0  # the smaller id offers
    big = "x" * 60000
    assert a.t.send("2", "hello") and a.t.send("2", big) and b.t.send("1", "é" * 10)
    await until(lambda: len(b.got) == 2 and a.got, what="messages")
    assert b.got == [("1", "hello"), ("1", big)] and a.got == [("2", "é" * 10)]
    with pytest.raises(MessageTooLarge):
        a.t.send("2", "y" * 70000)
    with pytest.raises(TypeError):
        a.t.send("2", b"bytes")
    assert a.t.send("9", "nobody") is False and a.t.stats["dropped_no_channel"] == 1
    # b goes away for good: a sees the channel close; a new b (same id) is
    # reconnected through a fresh offer.
    await b.t.aclose()
    await until(lambda: ("2", False) in a.events, what="a sees b gone")
    b2 = Peer(introducer_url, "2")
    await until(lambda: a.t.peers_up() == ["2"] and b2.t.peers_up() == ["1"], what="reconnect")
    assert a.t.send("2", "again")
    await until(lambda: b2.got == [("1", "again")], what="after reconnect")
    await a.t.aclose()
    await b2.t.aclose()


async def test_the_answering_side_asks_and_wants_limits_whom_we_dial(introducer_url):
    # "9" never dials anyone (a member's policy towards clients); "c1234"
    # wants only "9" and asks at once: one channel, to "9" only.
    m = Peer(introducer_url, "9", wants=lambda p: False)
    other = Peer(introducer_url, "5", wants=lambda p: False)
    c = Peer(introducer_url, "c1234", wants=lambda p: p == "9", ask_after_ms=0)
    await until(lambda: c.t.peers_up() == ["9"], what="client attached")
    await asyncio.sleep(1.5)
    assert c.t.peers_up() == ["9"] and other.t.peers_up() == []
    assert m.t.peers_up() == ["c1234"]
    for p in (m, other, c):
        await p.t.aclose()


async def test_bad_signals_and_frames_are_dropped_and_counted(introducer_url):
    a, b = Peer(introducer_url, "1"), Peer(introducer_url, "2")
    await until(lambda: a.t.peers_up() == ["2"], what="channel up")
    t = b.t
    before = t.stats["bad_signals"]
    for frame in ["not json", json.dumps({"no": "type"}), json.dumps({"type": "presence", "nodes": 5}),
                  json.dumps({"type": "signal", "from": 7, "data": {"t": "ask"}}),
                  json.dumps({"type": "signal", "from": "1", "data": {"t": "nope"}}),
                  json.dumps({"type": "signal", "from": "1", "data": {"t": "offer", "s": "x"}}),
                  json.dumps({"type": "signal", "from": "1", "data": "str"})]:
        t._on_ws_message(frame)
    await asyncio.sleep(0.1)
    assert t.stats["bad_signals"] - before == 7
    # an ice signal for the live session with a malformed candidate
    sid = t._peers["1"].conn.sid
    t._on_ws_message(json.dumps({"type": "signal", "from": "1",
                                 "data": {"t": "ice", "s": sid, "c": "{\"candidate\": 5}"}}))
    await asyncio.sleep(0.1)
    assert t.stats["bad_signals"] - before == 8
    assert a.t.peers_up() == ["2"] and a.t.send("2", "still fine")
    await until(lambda: ("1", "still fine") in b.got, what="channel untouched")
    await a.t.aclose()
    await b.t.aclose()


FROZEN_PEER = r"""
import asyncio, sys
from raft.replica.transport import Transport, gather_on
gather_on(["127.0.0.1"])
async def main():
    t = Transport("c", "2", on_message=lambda p, m: None, ws_url=sys.argv[1])
    t.start()
    while t.peers_up() != ["1"]:
        await asyncio.sleep(0.05)
    print("up", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


async def test_a_frozen_peer_is_closed_after_the_keepalive_deadline(introducer_url, monkeypatch):
    monkeypatch.setattr(tr, "PING_AFTER_MS", 300)
    monkeypatch.setattr(tr, "DEAD_AFTER_MS", 1500)
    monkeypatch.setattr(tr, "TICK_MS", 100)
    a = Peer(introducer_url, "1")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = await asyncio.create_subprocess_exec(sys.executable, "-c", FROZEN_PEER, introducer_url,
                                             stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert await asyncio.wait_for(p.stdout.readline(), 20) == b"up\n"
        await until(lambda: a.t.peers_up() == ["2"], what="channel up")
        await asyncio.sleep(2.5)  # a quiet channel whose peer answers pings stays up
        assert a.t.peers_up() == ["2"] and a.t.stats["silent_peers_closed"] == 0
        p.send_signal(signal.SIGSTOP)  # frozen: no pong, no DTLS bytes, no close
        await until(lambda: a.t.stats["silent_peers_closed"] == 1, timeout=6, what="closed")
        assert ("2", False) in a.events and a.t.peers_up() == []
    finally:
        p.send_signal(signal.SIGCONT)
        p.kill()
        await p.wait()
        await a.t.aclose()


async def test_wrong_secret_is_fatal_and_a_replaced_node_stops(aiohttp_server):
    from signaling.app import make_app
    tr.gather_on(["127.0.0.1"])
    srv = await aiohttp_server(make_app(secret="right"), host="127.0.0.1")
    url = "ws://127.0.0.1:%d/ws" % srv.port
    bad = Peer(url, "1", secret="wrong")
    await until(lambda: bad.t.error is not None, what="auth refused")
    assert bad.t.error == "auth_failed" and not bad.t.joined_once
    good = Peer(url, "1", secret="right")
    await until(lambda: good.t.introducer_up, what="joined")
    again = Peer(url, "1", secret="right")
    await until(lambda: good.t.error == "replaced", what="replaced")
    await until(lambda: again.t.introducer_up, what="new one joined")
    for p in (bad, good, again):
        await p.t.aclose()


async def test_an_introducer_that_is_down_is_retried_and_said():
    t = Transport("c", "1", on_message=lambda p, m: None, ws_url="ws://127.0.0.1:9/ws")
    t.start()
    await until(lambda: t.last_error is not None, what="first attempt fails")
    assert "cannot reach the introducer at ws://127.0.0.1:9/ws" in t.last_error
    assert t.error is None and not t.introducer_up  # not fatal: it keeps trying
    await t.aclose()


def test_pure_helpers():
    assert join_auth("S", "todo", "3", 1796000000)["mac"] == \
        __import__("hmac").new(b"S", b"todo\n3\n1796000000", "sha256").hexdigest()
    c = parse_candidate(json.dumps({"candidate": "candidate:1 1 udp 2122260223 10.77.0.1 "
                                    "54321 typ host generation 0", "sdpMid": "0",
                                    "sdpMLineIndex": 0}))
    assert (c.ip, c.port, c.type, c.sdpMid) == ("10.77.0.1", 54321, "host", "0")
    assert parse_candidate(json.dumps({"candidate": "", "sdpMid": "0"})) is None
    for bad in ["[]", "{}", "nope", json.dumps({"candidate": "garbage"})]:
        with pytest.raises(ValueError):
            parse_candidate(bad)
    with pytest.raises(ValueError):
        Transport("c", "1", on_message=None, ws_url="http://x/ws")
