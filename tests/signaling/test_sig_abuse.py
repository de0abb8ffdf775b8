"""Bad input and limits: every refusal is an error frame with a stable code or
a close with a documented code; the server keeps serving everyone else."""

import asyncio
import json

import pytest

from sig_helpers import (RawWebSocket, assert_server_healthy, expect_close, join, join_frame, open_ws,
                         recv_json, recv_type)


@pytest.fixture
async def bystanders(base_url):
    """A joined pair in another cluster: it must never notice the abuse."""
    a, _ = await join(base_url, "bystanders", "0", source="127.0.0.240")
    b, _ = await join(base_url, "bystanders", "1", source="127.0.0.241")
    await recv_json(a)

    async def check():
        await b.send(json.dumps({"type": "signal", "to": "0", "data": "still here"}))
        assert await recv_json(a) == {"type": "signal", "from": "1", "data": "still here"}
        await a.send(json.dumps({"type": "ping"}))
        assert await recv_json(a) == {"type": "pong"}
        await assert_server_healthy(base_url)

    yield check
    await a.close()
    await b.close()


async def refused(ws, frame, code):
    await ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    msg = await recv_json(ws)
    assert msg["type"] == "error" and msg["code"] == code, msg
    assert isinstance(msg["message"], str) and msg["message"]


GOOD_JOIN = {"type": "join", "v": 2, "cluster": "c", "node": "0", "kind": "member"}

BEFORE_JOIN = [
    ("not json", "bad_json"),
    ("{\"type\": \"join\"", "bad_json"),
    ("[" * 5000 + "]" * 5000, "bad_json"),  # nesting bomb
    ("[1, 2]", "bad_message"),
    ("\"join\"", "bad_message"),
    ("null", "bad_message"),
    ({}, "bad_message"),
    ({"type": 5}, "bad_message"),
    ({"type": None}, "bad_message"),
    ({"type": "hello"}, "unknown_type"),
    ({**GOOD_JOIN, "type": "JOIN"}, "unknown_type"),
    ({"type": "signal", "to": "1", "data": 1}, "not_joined"),
    ({"type": "leave"}, "not_joined"),
    ({"type": "join", "cluster": "c", "node": "0", "kind": "member"}, "bad_message"),
    ({**GOOD_JOIN, "v": 1}, "bad_version"),  # protocol v1: no kinds, no tokens
    ({**GOOD_JOIN, "v": 3}, "bad_version"),
    ({**GOOD_JOIN, "v": "2"}, "bad_version"),
    ({**GOOD_JOIN, "v": True}, "bad_version"),
    ({**GOOD_JOIN, "v": 2.0}, "bad_version"),
    ({**GOOD_JOIN, "v": 10 ** 400}, "bad_version"),  # a huge number is just a wrong one
    ('{"type":"join","v":1e400,"cluster":"c","node":"0","kind":"member"}', "bad_json"),
    ('{"type":"join","v":NaN,"cluster":"c","node":"0","kind":"member"}', "bad_json"),
    ('{"type":"ping","x":-Infinity}', "bad_json"),
    ({"type": "join", "v": 2, "node": "0", "kind": "member"}, "bad_message"),
    ({"type": "join", "v": 2, "cluster": "c", "kind": "member"}, "bad_message"),
    ({**GOOD_JOIN, "kind": None}, "bad_message"),
    ({**GOOD_JOIN, "kind": "admin"}, "bad_message"),
    ({**GOOD_JOIN, "kind": "client"}, "kind_mismatch"),  # a client can never take a member id
    ({**GOOD_JOIN, "node": "c0ffee"}, "kind_mismatch"),  # nor a member a client id
    ({**GOOD_JOIN, "node": "c9"}, "kind_mismatch"),  # "c..." is the clients' namespace
    ({**GOOD_JOIN, "node": "c0ffee", "kind": "client", "token": "short"}, "bad_message"),
    ({**GOOD_JOIN, "token": 10 ** 400}, "bad_message"),
    ({**GOOD_JOIN, "token": ["x" * 22]}, "bad_message"),
    ({**GOOD_JOIN, "cluster": ""}, "bad_message"),
    ({**GOOD_JOIN, "cluster": "x" * 65}, "bad_message"),
    ({**GOOD_JOIN, "cluster": "a b"}, "bad_message"),
    ({**GOOD_JOIN, "cluster": "a/b"}, "bad_message"),
    ({**GOOD_JOIN, "cluster": "é"}, "bad_message"),
    ({**GOOD_JOIN, "cluster": 7}, "bad_message"),
    ({**GOOD_JOIN, "node": 0}, "bad_message"),
    ({**GOOD_JOIN, "node": "n" * 33}, "bad_message"),
    ({**GOOD_JOIN, "node": "0\n"}, "bad_message"),
    ({**GOOD_JOIN, "node": ["0"]}, "bad_message"),
]


@pytest.mark.parametrize("frame, code", BEFORE_JOIN)
async def test_bad_frames_before_join(base_url, bystanders, frame, code):
    ws = await open_ws(base_url)
    await refused(ws, frame, code)
    # the socket is still usable and still not joined
    await ws.send(json.dumps(GOOD_JOIN))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()
    await bystanders()


AFTER_JOIN = [
    ({"type": "signal", "to": "9", "data": 1}, "unknown_target"),
    ({"type": "signal", "data": 1}, "bad_message"),
    ({"type": "signal", "to": 1, "data": 1}, "bad_message"),
    ({"type": "signal", "to": "../1", "data": 1}, "bad_message"),
    ({"type": "signal", "to": "1"}, "bad_message"),
    ({**GOOD_JOIN, "node": "2"}, "already_joined"),
    ({**GOOD_JOIN, "cluster": "other"}, "already_joined"),
    ({"type": "signal", "to": "1", "data": "[" * 2000}, None),  # just a string: relayed
    ('{"type":"signal","to":"1","data":{"x":NaN}}', "bad_json"),  # never relayed as non-JSON
    ('{"type":"signal","to":"1","data":[Infinity]}', "bad_json"),
    ('{"type":"signal","to":"1","data":1e400}', "bad_json"),  # would come out as Infinity
    ('{"type":"signal","to":"1","data":' + "9" * 5000 + "}", "bad_json"),  # over int parsing limits
]


@pytest.mark.parametrize("frame, code", AFTER_JOIN)
async def test_bad_frames_after_join(base_url, bystanders, frame, code):
    a, _ = await join(base_url, "c", "0")
    b, _ = await join(base_url, "c", "1")
    await recv_json(a)
    if code is None:
        await a.send(json.dumps(frame))
        assert (await recv_json(b))["data"] == frame["data"]
    else:
        await refused(a, frame, code)
    # a is still joined and its identity unchanged
    await a.send(json.dumps({"type": "signal", "to": "1", "data": "ok"}))
    assert await recv_json(b) == {"type": "signal", "from": "0", "data": "ok"}
    await a.close()
    await b.close()
    await bystanders()


async def test_deeply_nested_data_is_refused_shallow_is_relayed(base_url, bystanders):
    a, _ = await join(base_url, "c", "0")
    b, _ = await join(base_url, "c", "1")
    await recv_json(a)
    await refused(a, '{"type":"signal","to":"1","data":' + "[" * 5000 + "]" * 5000 + "}", "bad_json")
    await a.send('{"type":"signal","to":"1","data":' + "[" * 200 + "]" * 200 + "}")
    assert (await recv_json(b))["from"] == "0"
    await a.close()
    await b.close()
    await bystanders()


async def test_binary_frame_is_refused(base_url, bystanders):
    ws, _ = await join(base_url, "c", "0")
    await refused(ws, json.dumps({"type": "ping"}).encode(), "bad_message")
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv_json(ws) == {"type": "pong"}
    await ws.close()
    await bystanders()


async def test_invalid_utf8_text_frame_closes_that_socket_only(base_url, bystanders):
    raw = await RawWebSocket.connect(base_url)
    raw.send_frame(0x1, b'{"type":"ping","x":"\xff\xfe"}')
    opcode, payload = await raw.read_frame()
    assert opcode == 0x8  # close
    assert int.from_bytes(payload[:2], "big") == 1007  # invalid frame payload data
    raw.abort()
    await bystanders()


async def test_oversize_frame_gets_too_large_then_1009(base_url, bystanders):
    a, _ = await join(base_url, "c", "0")
    b, _ = await join(base_url, "c", "1")
    await recv_json(a)
    await a.send(json.dumps({"type": "signal", "to": "1", "data": "x" * 70_000}))
    seen = await expect_close(a, 1009)
    assert seen[-1]["type"] == "error" and seen[-1]["code"] == "too_large"
    assert await recv_json(b) == {"type": "presence", "cluster": "c", "nodes": ["1"]}
    await b.close()
    await bystanders()


async def test_multibyte_frame_over_limit_in_bytes_is_too_large(base_url):
    ws, _ = await join(base_url, "c", "0")
    # 30,000 chars but 90,000 UTF-8 bytes
    await ws.send('{"type":"ping","pad":"' + "€" * 30_000 + '"}')
    seen = await expect_close(ws, 1009)
    assert seen[-1]["code"] == "too_large"


async def test_frame_just_under_limit_is_relayed(base_url):
    a, _ = await join(base_url, "c", "0")
    b, _ = await join(base_url, "c", "1")
    await recv_json(a)
    head = '{"type":"signal","to":"1","data":"'
    frame = head + "y" * (65536 - len(head) - 2) + '"}'
    assert len(frame.encode()) == 65536
    await a.send(frame)
    assert len((await recv_json(b))["data"]) == 65536 - len(head) - 2
    await a.close()
    await b.close()


async def test_huge_frame_is_cut_at_transport(base_url, bystanders):
    ws, _ = await join(base_url, "c", "0")
    await ws.send("x" * (2 * 1024 * 1024))
    await expect_close(ws, 1009)
    await bystanders()


async def test_rate_limit_refuses_over_burst(base_url, bystanders):
    ws = await open_ws(base_url)
    n = 600
    await asyncio.gather(*(ws.send('{"type":"ping"}') for _ in range(n)))
    pongs = limited = 0
    for _ in range(n):
        msg = await recv_json(ws)
        if msg["type"] == "pong":
            pongs += 1
        else:
            assert msg["code"] == "rate_limited", msg
            limited += 1
    assert 400 <= pongs < n and limited >= 1
    await asyncio.sleep(0.6)  # tokens come back at 200/s
    await ws.send('{"type":"ping"}')
    assert await recv_json(ws) == {"type": "pong"}
    await ws.close()
    await bystanders()


async def test_sustained_flood_is_closed_4429(base_url, bystanders):
    ws = await open_ws(base_url)
    for _ in range(3000):
        await ws.send('{"type":"ping"}')
    seen = await expect_close(ws, 4429)
    assert any(m.get("code") == "rate_limited" for m in seen)
    await bystanders()


async def test_binary_flood_is_closed_4429(base_url, bystanders):
    ws = await open_ws(base_url)
    for _ in range(3000):
        await ws.send(b"\x00")
    await expect_close(ws, 4429)
    await bystanders()


async def test_cluster_full_at_the_node_limit(make_server):
    base = await make_server(max_nodes=4)
    members = [(await join(base, "full", str(i)))[0] for i in range(4)]
    extra = await open_ws(base)
    await refused(extra, {**GOOD_JOIN, "cluster": "full", "node": "x9"}, "cluster_full")
    # a leave frees a place
    await members[0].close()
    while len((await recv_json(members[1]))["nodes"]) != 3:
        pass
    await extra.send(json.dumps(join_frame(extra, "full", "x9")))
    assert (await recv_json(extra))["type"] == "welcome"
    assert len((await recv_json(extra))["nodes"]) == 4
    # other clusters are not limited by this one being full
    other, _ = await join(base, "other", "0")
    for ws in members[1:] + [extra, other]:
        await ws.close()
    await assert_server_healthy(base)


async def test_default_limit_fits_seven_voters_and_many_clients(base_url):
    # 7 voters + learners + client windows share one cluster's presence.
    # (Windows of several machines: one address may not open that many at once.)
    socks = [(await join(base_url, "big", str(i), source="127.0.1.%d" % i))[0] for i in range(7)]
    socks += [(await join(base_url, "big", "c%04d" % i, source="127.0.2.%d" % (i % 4)))[0]
              for i in range(33)]
    last = await recv_type(socks[-2], "presence")
    assert len(last["nodes"]) == 40
    # All at once: each client has presence frames unread (its queue full,
    # it stops reading), so a close waits out websockets' close timeout.
    await asyncio.gather(*(ws.close() for ws in socks))


async def test_a_socket_that_never_joins_is_closed(make_server):
    base = await make_server(join_timeout=0.3)
    idle = await open_ws(base)
    pinging = await open_ws(base)
    await pinging.send(json.dumps({"type": "ping"}))
    assert (await recv_json(pinging))["type"] == "pong"  # pings do not count as joining
    joined, _ = await join(base, "c", "0")
    seen = await expect_close(idle, 4408, timeout=3)
    assert seen and seen[-1]["code"] == "join_timeout", seen
    await expect_close(pinging, 4408, timeout=3)
    # A joined socket stays; after a leave the clock starts again.
    await asyncio.sleep(0.4)
    await joined.send(json.dumps({"type": "ping"}))
    assert (await recv_type(joined, "pong"))["type"] == "pong"
    await joined.send(json.dumps({"type": "leave"}))
    await expect_close(joined, 4408, timeout=3)
    await assert_server_healthy(base)


async def test_too_many_clusters(make_server):
    base = await make_server(max_clusters=2)
    a, _ = await join(base, "one", "0")
    b, _ = await join(base, "two", "0")
    c = await open_ws(base)
    await refused(c, {**GOOD_JOIN, "cluster": "three"}, "too_many_clusters")
    # joining an existing cluster is still fine
    await c.send(json.dumps(join_frame(c, "two", "1")))
    assert (await recv_json(c))["type"] == "welcome"
    # an emptied cluster frees its slot
    await a.close()
    d = await open_ws(base)
    for _ in range(50):
        await d.send(json.dumps(join_frame(d, "three", "0")))
        msg = await recv_json(d)
        if msg["type"] == "welcome":
            break
        assert msg["code"] == "too_many_clusters"
        await asyncio.sleep(0.05)
    assert msg["type"] == "welcome"
    for ws in (b, c, d):
        await ws.close()


async def test_many_abusers_at_once(base_url, bystanders):
    """Concurrent garbage from many sockets, then everything still works."""
    async def abuser(i):
        raw = await RawWebSocket.connect(base_url)
        raw.send_frame(0x1, b"garbage")
        raw.send_frame(0x2, b"\x00\x01")
        raw.send_join("mob", str(i))
        raw.send_json({"type": "signal", "to": str((i + 1) % 10), "data": i})
        await asyncio.sleep(0.05)
        raw.abort()
    await asyncio.gather(*(abuser(i) for i in range(30)))
    await bystanders()


async def test_a_server_bug_costs_one_frame_not_the_socket(aiohttp_server, site_root, caplog):
    from signaling.app import INTRODUCER, make_app
    app = make_app(site_root)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"

    def broken_relay(sock, frame):
        raise KeyError("simulated bug")

    app[INTRODUCER].relay_signal = broken_relay
    ws, _ = await join(base, "c", "0")
    await refused(ws, {"type": "signal", "to": "0", "data": 1}, "internal_error")
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv_json(ws) == {"type": "pong"}
    assert "simulated bug" in caplog.text
    await ws.close()
