"""Introducer protocol v2 (signaling/PROTOCOL.md): hello, join, welcome,
presence, relay, ping, leave, reloads taking their id back, isolation,
heartbeat drops. (Tokens and refusals of a held id: test_sig_identity.py.)"""

import asyncio
import json

from sig_helpers import (RawWebSocket, expect_close, expect_silence, join, join_frame, open_ws,
                         recv_json, recv_type)


async def test_join_gets_welcome_then_presence(make_server):
    base = await make_server(ice_servers=[{"urls": "stun:10.0.0.1:3478"},
                                          {"urls": "turn:10.0.0.1:3478", "username": "u", "credential": "p"}])
    ws = await open_ws(base)
    await ws.send(json.dumps(join_frame(ws, "todo", "0")))
    welcome = await recv_json(ws)
    assert len(welcome.pop("token")) == 22
    assert welcome == {
        "type": "welcome", "v": 2, "cluster": "todo", "node": "0", "kind": "member",
        "ice_servers": [{"urls": "stun:10.0.0.1:3478"},
                        {"urls": "turn:10.0.0.1:3478", "username": "u", "credential": "p"}]}
    assert await recv_json(ws) == {"type": "presence", "cluster": "todo", "nodes": ["0"]}
    await ws.close()


async def test_presence_goes_to_every_member_on_join_and_leave(base_url):
    a, _ = await join(base_url, "c", "0")
    b, _ = await join(base_url, "c", "1")
    assert await recv_json(a) == {"type": "presence", "cluster": "c", "nodes": ["0", "1"]}
    c, _ = await join(base_url, "c", "2")
    for ws in (a, b):
        assert await recv_json(ws) == {"type": "presence", "cluster": "c", "nodes": ["0", "1", "2"]}
    await b.send(json.dumps({"type": "leave"}))
    for ws in (a, c):
        assert await recv_json(ws) == {"type": "presence", "cluster": "c", "nodes": ["0", "2"]}
    assert (await recv_json(b))["type"] == "hello"  # a new challenge for its next join
    await expect_silence(b)  # the leaver is out: no presence for it
    await c.close()  # a clean close is an implicit leave
    assert await recv_json(a) == {"type": "presence", "cluster": "c", "nodes": ["0"]}
    await a.close()
    await b.close()


async def test_presence_nodes_are_sorted_strings(base_url):
    sockets = []
    for node in ["b", "10", "2", "A"]:
        ws, _ = await join(base_url, "s", node)
        sockets.append(ws)
    last = None
    while True:
        try:
            last = await recv_json(sockets[0], 0.3)
        except asyncio.TimeoutError:
            break
    assert last["nodes"] == sorted(["b", "10", "2", "A"]) == ["10", "2", "A", "b"]
    for ws in sockets:
        await ws.close()


async def test_abrupt_drop_updates_presence(base_url):
    a, _ = await join(base_url, "d", "0")
    raw = await RawWebSocket.connect(base_url)
    raw.send_join("d", "1")
    assert (await raw.read_json())["type"] == "welcome"
    assert (await recv_json(a))["nodes"] == ["0", "1"]
    raw.abort()  # TCP reset, no close frame
    assert await recv_json(a) == {"type": "presence", "cluster": "d", "nodes": ["0"]}
    await a.close()


async def test_heartbeat_drops_a_silent_peer(make_server):
    base = await make_server(heartbeat=1.0)
    a, _ = await join(base, "hb", "0")
    raw = await RawWebSocket.connect(base)
    raw.send_join("hb", "1")
    assert (await raw.read_json())["type"] == "welcome"
    assert (await recv_json(a))["nodes"] == ["0", "1"]
    # raw never answers the server's pings; the websockets client (a) does.
    assert await recv_json(a, timeout=5) == {"type": "presence", "cluster": "hb", "nodes": ["0"]}
    await a.send(json.dumps({"type": "ping"}))
    assert await recv_json(a) == {"type": "pong"}
    raw.abort()
    await a.close()


async def test_signal_is_relayed_with_server_stamped_from(base_url):
    a, _ = await join(base_url, "r", "0")
    b, _ = await join(base_url, "r", "1")
    await recv_json(a)  # presence [0, 1]
    offer = {"type": "offer", "sdp": "v=0\r\n...", "nested": [1, None, {"x": "é"}]}
    # 'from' in the frame is ignored: the server stamps the real sender.
    await b.send(json.dumps({"type": "signal", "to": "0", "from": "7", "data": offer}))
    assert await recv_json(a) == {"type": "signal", "from": "1", "data": offer}
    await a.send(json.dumps({"type": "signal", "to": "1", "data": None}))
    assert await recv_json(b) == {"type": "signal", "from": "0", "data": None}
    await a.close()
    await b.close()


async def test_ping_pong_before_and_after_join(base_url):
    ws = await open_ws(base_url)
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv_json(ws) == {"type": "pong"}
    await ws.close()
    ws, _ = await join(base_url, "p", "0")
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv_json(ws) == {"type": "pong"}
    await ws.close()


async def test_leave_then_join_again_elsewhere(base_url):
    ws, _ = await join(base_url, "one", "0")
    await ws.send(json.dumps({"type": "leave"}))
    ws.hello = await recv_type(ws, "hello")
    await ws.send(json.dumps(join_frame(ws, "two", "5")))
    assert (await recv_json(ws))["type"] == "welcome"
    assert await recv_json(ws) == {"type": "presence", "cluster": "two", "nodes": ["5"]}
    await ws.close()


async def test_clusters_are_isolated(base_url):
    a0, _ = await join(base_url, "alpha", "0")
    a1, _ = await join(base_url, "alpha", "1")
    b0, _ = await join(base_url, "beta", "0")
    b1, _ = await join(base_url, "beta", "1")
    assert (await recv_json(a0))["nodes"] == ["0", "1"]
    assert (await recv_json(b0))["nodes"] == ["0", "1"]
    await a1.send(json.dumps({"type": "signal", "to": "0", "data": "for alpha"}))
    assert await recv_json(a0) == {"type": "signal", "from": "1", "data": "for alpha"}
    await b1.send(json.dumps({"type": "signal", "to": "0", "data": "for beta"}))
    assert await recv_json(b0) == {"type": "signal", "from": "1", "data": "for beta"}
    await a1.close()
    assert (await recv_json(a0))["nodes"] == ["0"]
    # beta saw none of it
    await expect_silence(b0)
    await expect_silence(b1)
    # and a beta node cannot reach an alpha-only id
    await b1.send(json.dumps({"type": "signal", "to": "9", "data": 1}))
    assert (await recv_json(b1))["code"] == "unknown_target"
    for ws in (a0, b0, b1):
        await ws.close()


async def test_a_reload_with_the_token_takes_the_id_back_at_once(base_url):
    peer, _ = await join(base_url, "dup", "1")
    old, welcome = await join(base_url, "dup", "0")
    assert (await recv_json(peer))["nodes"] == ["0", "1"]
    # the reloaded window reconnects before the old socket is seen dead
    new, again = await join(base_url, "dup", "0", token=welcome["token"])
    assert again["token"] == welcome["token"]
    seen = await expect_close(old, 4409)
    assert seen[-1]["type"] == "error" and seen[-1]["code"] == "replaced"
    # presence went out for the replacing join, and the old close changed nothing
    assert await recv_json(peer) == {"type": "presence", "cluster": "dup", "nodes": ["0", "1"]}
    await expect_silence(peer, 0.3)
    # signals to "0" now reach the new socket
    await peer.send(json.dumps({"type": "signal", "to": "0", "data": "hi"}))
    assert await recv_json(new) == {"type": "signal", "from": "1", "data": "hi"}
    await new.close()
    assert (await recv_json(peer))["nodes"] == ["1"]
    await peer.close()


async def test_replacing_a_dead_socket_does_not_block(base_url):
    """The stale socket may never answer the close handshake; the new join must not wait."""
    raw = await RawWebSocket.connect(base_url)
    raw.send_join("z", "0")
    welcome = await raw.read_json()
    assert welcome["type"] == "welcome"
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    new, _ = await join(base_url, "z", "0", token=welcome["token"])
    assert loop.time() - t0 < 1.0
    await new.send(json.dumps({"type": "ping"}))
    assert await recv_type(new, "pong") == {"type": "pong"}
    raw.abort()
    await new.close()


async def test_server_shutdown_closes_sockets_with_1001(aiohttp_server, site_root):
    from signaling.app import make_app
    server = await aiohttp_server(make_app(site_root))
    base = f"http://127.0.0.1:{server.port}"
    ws, _ = await join(base, "bye", "0")
    closing = asyncio.ensure_future(server.close())
    await expect_close(ws, 1001)
    await closing


async def test_shutdown_is_bounded_with_a_dead_peer(aiohttp_server, site_root):
    from signaling.app import INTRODUCER, make_app
    app = make_app(site_root)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    raw = await RawWebSocket.connect(base)  # never answers the close handshake
    raw.send_join("bye", "1")
    assert (await raw.read_json())["type"] == "welcome"
    ws, _ = await join(base, "bye", "0")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    shutting = asyncio.ensure_future(app[INTRODUCER].shutdown(timeout=0.5))
    await expect_close(ws, 1001)
    await shutting
    assert loop.time() - t0 < 2.0
    raw.abort()
