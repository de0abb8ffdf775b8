"""raft/replica/transport.py between CPython peers over a real introducer:
the rules of raft/peering.py (who offers, asks, replacement, keepalive,
limits, bad signals, the v2 join: access secret, tokens, held ids), over
real aiortc data channels on loopback."""

import asyncio
import json
import os
import signal
import sys

import pytest

from raft.replica import transport as tr
from raft import cluster_key, peering
from raft.peering import join_proof
from raft.replica.transport import MessageTooLarge, Transport, parse_candidate

from replica_helpers import until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Peer:
    def __init__(self, url, node, cluster="c", **kw):
        self.got = []
        self.events = []
        self.t = Transport(cluster, node, on_message=lambda p, m: self.got.append((p, m)),
                           on_peer=lambda p, up: self.events.append((p, up)), ws_url=url, **kw)
        self.t.start()


class Tokens(dict):
    def set(self, key, value):
        self[key] = value


async def test_two_peers_connect_exchange_and_reconnect_after_a_restart(introducer_url):
    kept = Tokens()  # b's file: where its id token is kept across the restart
    a, b = Peer(introducer_url, "1"), Peer(introducer_url, "2", tokens=kept)
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
    # b goes away: a sees the channel close; b restarted (same id, its kept
    # token) is reconnected through a fresh offer.
    await b.t.aclose()
    await until(lambda: ("2", False) in a.events, what="a sees b gone")
    b2 = Peer(introducer_url, "2", tokens=kept)
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
    monkeypatch.setattr(peering, "PING_AFTER_MS", 300)
    monkeypatch.setattr(peering, "DEAD_AFTER_MS", 1500)
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


SECRET = "a-test-access-secret-of-32-chars"


async def test_access_secret_tokens_and_held_ids(aiohttp_server):
    from signaling.app import make_app
    tr.gather_on(["127.0.0.1"])
    srv = await aiohttp_server(make_app(access_secret=SECRET), host="127.0.0.1")
    url = "ws://127.0.0.1:%d/ws" % srv.port
    none = Peer(url, "1")
    bad = Peer(url, "1", secret="wrong-" + SECRET)
    await until(lambda: none.t.error and bad.t.error, what="refusals")
    assert (none.t.error, bad.t.error) == ("auth_required", "auth_failed")
    assert not none.t.joined_once and not bad.t.joined_once
    assert "--secret-file" in none.t.last_error
    tokens = Tokens()
    good = Peer(url, "1", secret=SECRET, tokens=tokens)
    await until(lambda: good.t.introducer_up, what="joined")
    assert list(tokens) == ["wraft.token:c:1"]
    # another process without the token cannot take the id: refused, the holder keeps it
    stranger = Peer(url, "1", secret=SECRET)
    await until(lambda: stranger.t.error is not None, what="id held")
    assert stranger.t.error == "id_held" and good.t.error is None
    # a restart with the kept token takes it back at once; the old one is told
    again = Peer(url, "1", secret=SECRET, tokens=tokens)
    await until(lambda: good.t.error == "replaced", what="replaced")
    await until(lambda: again.t.introducer_up, what="new one joined")
    # a client-kind id joins as a client (and keeps no token)
    client = Peer(url, "c1234abcd", secret=SECRET, tokens=tokens)
    await until(lambda: client.t.introducer_up, what="client joined")
    assert client.t.kind == "client" and list(tokens) == ["wraft.token:c:1"]
    for p in (none, bad, good, stranger, again, client):
        await p.t.aclose()


async def test_an_introducer_that_accepts_but_never_welcomes_is_left(aiohttp_server, monkeypatch):
    """Every wait has a deadline: a socket that opens and then says nothing
    is closed and retried."""
    from aiohttp import web
    monkeypatch.setattr(peering, "INTRODUCER_DEADLINE_MS", 600)
    monkeypatch.setattr(tr, "TICK_MS", 100)
    sockets = []

    async def mute(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.append(ws)
        async for _ in ws:
            pass
        return ws
    app = web.Application()
    app.router.add_get("/ws", mute)
    srv = await aiohttp_server(app, host="127.0.0.1")
    p = Peer("ws://127.0.0.1:%d/ws" % srv.port, "1")
    await until(lambda: p.t.stats["introducer_timeouts"] >= 2, what="left and retried")
    assert len(sockets) >= 2 and p.t.error is None and "no welcome" in p.t.last_error
    await p.t.aclose()


KEY = "replica-test-cluster-key"


async def test_keyed_peers_prove_their_channel_over_aiortc_fingerprints(introducer_url):
    """aiortc's SDP carries its DTLS fingerprints (several algorithms): both
    ends read the same ones, so the channel proofs verify both ways."""
    a, b = Peer(introducer_url, "1", cluster="k", key=KEY), Peer(introducer_url, "2", cluster="k", key=KEY)
    await until(lambda: a.t.peers_up() == ["2"] and b.t.peers_up() == ["1"], what="keyed channel")
    assert a.t.stats["proofs_verified"] == 1 and b.t.stats["proofs_verified"] == 1
    conn = a.t._peers["2"].conn
    assert "sha-256 " in cluster_key.sdp_fingerprints(conn.offer_sdp)
    assert cluster_key.sdp_fingerprints(conn.offer_sdp) != cluster_key.sdp_fingerprints(conn.answer_sdp)
    assert a.t.send("2", "sealed hello")
    await until(lambda: b.got == [("1", "sealed hello")], what="message after the proofs")
    # another key and no key: present, refused, said, no channel
    other = Peer(introducer_url, "3", cluster="k", key="z" * 22)
    none = Peer(introducer_url, "4", cluster="k")
    await until(lambda: other.t.key_error and none.t.key_error, what="key trouble said")
    assert "do not verify" in other.t.key_error and "have no key" in none.t.key_error
    await asyncio.sleep(1)
    assert other.t.peers_up() == [] and none.t.peers_up() == [] and a.t.peers_up() == ["2"]
    for p in (a, b, other, none):
        await p.t.aclose()


async def test_an_introducer_that_is_down_is_retried_and_said():
    t = Transport("c", "1", on_message=lambda p, m: None, ws_url="ws://127.0.0.1:9/ws")
    t.start()
    await until(lambda: t.last_error is not None, what="first attempt fails")
    assert "cannot reach the introducer at ws://127.0.0.1:9/ws" in t.last_error
    assert t.error is None and not t.introducer_up  # not fatal: it keeps trying
    await t.aclose()


def test_pure_helpers():
    from signaling.auth import proof_is_valid
    # the peers' proof is the one the server checks (two sides of the wall, one rule)
    assert proof_is_valid(SECRET, "n0nce", "todo", "3", "member",
                          join_proof(SECRET, "n0nce", "todo", "3", "member"))
    assert not proof_is_valid(SECRET, "n0nce", "todo", "3", "client",
                              join_proof(SECRET, "n0nce", "todo", "3", "member"))
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
