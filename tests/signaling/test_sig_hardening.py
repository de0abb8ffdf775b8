"""The introducer under attack (issue 11): cross-site pages, DNS rebinding,
sockets that answer pings but never join, slow readers, ping floods,
presence churn, cluster squatting, per-address and global caps. Each attack
gets a clear refusal, and honest sockets keep their latency."""

import asyncio
import json
import statistics
import time

import pytest
from websockets.exceptions import InvalidStatus

from signaling.addresses import AddressBook
from sig_helpers import (RawWebSocket, assert_server_healthy, expect_close, join, join_frame,
                         open_ws, recv_json, recv_type)


async def http_status_of_upgrade(base, **kw):
    with pytest.raises(InvalidStatus) as info:
        await open_ws(base, **kw)
    return info.value.response.status_code


# -- who may connect -------------------------------------------------------------

async def test_ws_refuses_other_sites_origins(make_server):
    base = await make_server(allow_origins=["https://app.example.org"])
    port = base.rsplit(":", 1)[1]
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null",
                   f"http://localhost:{port}",  # another origin than the page's (Host 127.0.0.1)
                   f"http://127.0.0.1:{int(port) + 1}", f"ftp://127.0.0.1:{port}", "https://app.example.org:444"):
        assert await http_status_of_upgrade(base, origin=origin) == 403, origin
    for origin in (f"http://127.0.0.1:{port}", f"https://127.0.0.1:{port}", "https://app.example.org"):
        ws = await open_ws(base, origin=origin)
        await ws.close()
    # a served page's own origin, by its *.localhost name
    ws = await open_ws(base, origin=f"http://wraft2.localhost:{port}", host=f"wraft2.localhost:{port}")
    await ws.close()
    await assert_server_healthy(base)


async def test_unknown_host_names_are_refused(make_server):
    """DNS rebinding: evil.example resolving to us must not reach the pages or /ws."""
    from test_sig_static import raw_get
    base = await make_server(server_names=["wraft.example.org"])
    port = base.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", "localhost.evil.example", "", "a b"):
        status, data = await raw_get(base, "/todo", host=host)
        assert status in (400, 421), (host, data[:200])
        assert b"<h1>todo</h1>" not in data
    status, _ = await raw_get(base, "/ws", host=f"evil.example:{port}")
    assert status == 421
    for host in (f"127.0.0.1:{port}", f"wraft5.localhost:{port}", "localhost", "[::1]:1",
                 "wraft.example.org", "WRAFT.example.org:443"):
        status, data = await raw_get(base, "/todo", host=host)
        assert status == 200, (host, data[:200])


async def test_per_address_socket_cap_and_global_cap(make_server):
    base = await make_server(max_sockets=6, addresses=AddressBook(max_sockets=3))
    mine = [await open_ws(base, source="127.0.0.30") for _ in range(3)]
    assert await http_status_of_upgrade(base, source="127.0.0.30") == 429
    theirs = [await open_ws(base, source="127.0.0.31") for _ in range(3)]
    assert await http_status_of_upgrade(base, source="127.0.0.32") == 503  # the server is full
    await mine.pop().close()
    await asyncio.sleep(0.1)
    ws = await open_ws(base, source="127.0.0.32")  # a place freed
    for w in mine + theirs + [ws]:
        await w.close()


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(make_server):
    from test_sig_static import raw_get
    base = await make_server(trusted_proxies=["127.0.0.1"], addresses=AddressBook(max_sockets=2))

    def via(client):
        return {"X-Forwarded-For": f"198.51.100.9, {client}"}  # the first hop is the client's own say

    a = [await open_ws(base, headers=via("203.0.113.1")) for _ in range(2)]
    assert await http_status_of_upgrade(base, headers=via("203.0.113.1")) == 429
    b = await open_ws(base, headers=via("203.0.113.2"))  # another window behind the proxy
    # from an untrusted peer the header is the client's to make up: ignored
    c = [await open_ws(base, source="127.0.0.60", headers=via(f"203.0.113.{10 + i}")) for i in range(2)]
    assert await http_status_of_upgrade(base, source="127.0.0.60", headers=via("203.0.113.99")) == 429
    # the proxy checked the host name (it serves only its own, over TLS)
    status, _ = await raw_get(base, "/todo", host="wraft0.example.org")
    assert status == 200
    for ws in a + [b] + c:
        await ws.close()


async def test_per_address_connect_and_join_rate(make_server):
    base = await make_server(addresses=AddressBook(rate=2, burst=4))
    a, _ = await join(base, "c", "0", source="127.0.0.33")  # 2 tokens: connect + join
    b = await open_ws(base, source="127.0.0.33")  # 3
    await b.send(json.dumps(join_frame(b, "c", "1")))  # 4
    assert (await recv_json(b))["type"] == "welcome"
    await b.send(json.dumps({"type": "leave"}))
    b.hello = await recv_type(b, "hello")
    await b.send(json.dumps(join_frame(b, "c", "2")))
    assert (await recv_type(b, "error"))["code"] == "rate_limited"
    assert await http_status_of_upgrade(base, source="127.0.0.33") == 429
    ws, _ = await join(base, "c", "3", source="127.0.0.34")  # other addresses are not affected
    await asyncio.sleep(1.1)  # tokens come back
    await b.send(json.dumps(join_frame(b, "c", "2")))
    assert (await recv_type(b, "welcome"))["node"] == "2"
    for w in (a, b, ws):
        await w.close()


async def test_cluster_squatting_is_capped_per_address(make_server):
    base = await make_server(max_clusters=20, addresses=AddressBook(max_clusters=5, burst=100))
    squatter = [(await join(base, f"sq{i}", "0", source="127.0.0.40"))[0] for i in range(5)]
    extra = await open_ws(base, source="127.0.0.40")
    await extra.send(json.dumps(join_frame(extra, "sq5", "0")))
    msg = await recv_json(extra)
    assert msg["code"] == "address_clusters", msg
    # joining one of its own clusters again is no new cluster
    await extra.send(json.dumps(join_frame(extra, "sq0", "1")))
    assert (await recv_json(extra))["type"] == "welcome"
    # everyone else can still make clusters
    for i in range(3):
        ws, _ = await join(base, f"honest{i}", "0", source=f"127.0.0.{41 + i}")
        await ws.close()
    for ws in squatter + [extra]:
        await ws.close()


# -- the join deadline -------------------------------------------------------------

async def test_a_socket_answering_pings_is_still_closed_at_the_join_deadline(make_server):
    """Browsers answer WebSocket pings by themselves: pongs must not move the
    deadline (aiohttp's receive timeout restarts on each one)."""
    base = await make_server(join_timeout=1.0, heartbeat=0.2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ws = await open_ws(base)  # websockets answers the server's pings by itself
    seen = await expect_close(ws, 4408, timeout=4)
    elapsed = loop.time() - t0
    assert seen[-1]["code"] == "join_timeout"
    assert 0.9 <= elapsed < 1.8, elapsed


async def test_pings_of_its_own_do_not_move_the_join_deadline(make_server):
    base = await make_server(join_timeout=1.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ws = await open_ws(base)

    async def keep_busy():
        while True:
            await ws.ping()
            await ws.send('{"type":"ping"}')
            await asyncio.sleep(0.1)

    busy = asyncio.ensure_future(keep_busy())
    try:
        await expect_close(ws, 4408, timeout=4)
    finally:
        busy.cancel()
    assert loop.time() - t0 < 1.8
    await assert_server_healthy(base)


# -- floods ------------------------------------------------------------------------

async def measure_relay(a, b, to_b: str, seconds: float, every: float = 0.02) -> list[float]:
    """Relay latencies (s) of small signals a -> b for `seconds`."""
    latencies = []

    async def receive():
        while True:
            msg = await recv_type(b, "signal", timeout=seconds + 5)
            latencies.append(time.monotonic() - msg["data"]["t"])

    receiving = asyncio.ensure_future(receive())
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        await a.send(json.dumps({"type": "signal", "to": to_b, "data": {"t": time.monotonic()}}))
        sent += 1
        await asyncio.sleep(every)
    await asyncio.sleep(0.5)
    receiving.cancel()
    assert len(latencies) == sent, (len(latencies), sent)
    return latencies


@pytest.fixture
async def honest_pair(base_url):
    a, _ = await join(base_url, "honest", "0", source="127.0.0.50")
    b, _ = await join(base_url, "honest", "1", source="127.0.0.51")
    await recv_json(a)
    yield a, b
    await a.close()
    await b.close()


async def test_ws_ping_flood_is_cut_and_nobody_else_waits(base_url, honest_pair):
    a, b = honest_pair
    flooder = await RawWebSocket.connect(base_url, source="127.0.0.52")
    pongs = 0

    async def flood():
        nonlocal pongs
        for _ in range(30):
            for _ in range(1000):
                flooder.send_frame(0x9, b"p")
            await flooder.writer.drain()
            await asyncio.sleep(0)

    async def count_pongs():
        nonlocal pongs
        while True:
            opcode, payload = await flooder.read_frame(timeout=10)
            if opcode == 0xA:
                pongs += 1
            elif opcode == 0x8:
                return int.from_bytes(payload[:2], "big")

    counting = asyncio.ensure_future(count_pongs())
    flooding = asyncio.ensure_future(flood())
    latencies = await measure_relay(a, b, "1", 1.5)
    code = await asyncio.wait_for(counting, 10)
    flooding.cancel()
    flooder.abort()
    assert code == 4429
    assert pongs <= 450, pongs  # the burst, not 30,000
    assert await http_status_of_upgrade(base_url, source="127.0.0.52") == 429  # and it must wait
    assert statistics.median(latencies) < 0.1 and max(latencies) < 1.0, latencies


async def test_presence_churn_is_limited_then_cut(base_url):
    watcher, _ = await join(base_url, "churn", "0", source="127.0.0.53")
    churner = await open_ws(base_url, source="127.0.0.54")
    for i in range(500):  # a new id each time (an old one would need its token)
        await churner.send(json.dumps(join_frame(churner, "churn", str(i + 1))))
        await churner.send('{"type":"leave"}')
    await expect_close(churner, 4429, timeout=10)
    presence = 0
    try:
        while True:
            if (await recv_json(watcher, timeout=0.5))["type"] == "presence":
                presence += 1
    except asyncio.TimeoutError:
        pass
    # at most the join burst (5) of joins, each with its leave; not 1,000
    assert presence <= 12, presence
    await watcher.close()


async def test_a_member_that_stops_reading_stalls_nobody(make_server):
    """Signals and presence for a member that does not read pile up in its
    own bounded queue; it is cut, and the honest members' relays go on."""
    base = await make_server()
    a, _ = await join(base, "slow", "0", source="127.0.0.55")
    b, _ = await join(base, "slow", "1", source="127.0.0.56")
    await recv_json(a)
    sleeper = await RawWebSocket.connect(base, source="127.0.0.57", read_limit=1024)
    sleeper.send_join("slow", "2")
    await asyncio.sleep(0.2)  # joined; from now on it reads nothing
    await recv_type(a, "presence")
    await recv_type(b, "presence")
    big = "x" * 65_000

    async def stuff_the_sleeper():
        for _ in range(300):  # ~19 MB: beyond any socket buffers, and its queue
            await a.send(json.dumps({"type": "signal", "to": "2", "data": big}))
            await asyncio.sleep(0.004)

    stuffing = asyncio.ensure_future(stuff_the_sleeper())
    latencies = await measure_relay(b, a, "0", 2.0)
    await stuffing
    # the sleeper was cut, and everybody heard
    while (msg := await recv_type(b, "presence", timeout=15))["nodes"] != ["0", "1"]:
        pass
    assert statistics.median(latencies) < 0.1 and max(latencies) < 1.0, latencies
    sleeper.abort()
    await assert_server_healthy(base)


async def test_a_send_stuck_longer_than_the_send_timeout_is_cut(make_server):
    base = await make_server(send_timeout=0.5, outbox_limit=1 << 30)  # the queue never overflows
    a, _ = await join(base, "stuck", "0", source="127.0.0.58")
    sleeper = await RawWebSocket.connect(base, source="127.0.0.59", read_limit=1024)
    sleeper.send_join("stuck", "1")
    await recv_type(a, "presence")
    t0 = time.monotonic()
    for _ in range(150):
        await a.send(json.dumps({"type": "signal", "to": "1", "data": "y" * 65_000}))
        await asyncio.sleep(0.005)
    while (await recv_type(a, "presence", timeout=10))["nodes"] != ["0"]:
        pass
    assert time.monotonic() - t0 < 8
    sleeper.abort()
    await a.close()
