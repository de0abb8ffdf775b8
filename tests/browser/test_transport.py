"""raft.browser.transport in real Chromium windows: mesh, recovery, introducer outage."""

import json
import time

import pytest
from websockets.sync.client import connect

from browser_helpers import cluster_name, exchange_all, open_nodes, send, state, wait_mesh, wait_until


@pytest.mark.browser
def test_three_windows_form_a_mesh_and_exchange_messages(server, open_window):
    windows = open_nodes(server, open_window, cluster_name("mesh"))
    wait_mesh(windows)
    exchange_all(windows, "hello")
    for w in windows:
        s = state(w)
        assert s["presence"] == ["0", "1", "2"]
        assert s["stats"]["bad_signals"] == 0 and s["stats"]["signal_errors"] == 0
    # order is kept on one channel
    for i in range(50):
        assert send(windows[2], "0", f"seq{i}") == "true"
    wait_until(lambda: state(windows[0])["counts"].get("2", 0) == 1 + 50, what="50 in order")
    assert state(windows[0])["log"]["2"][-20:] == [f"seq{i}" for i in range(30, 50)]
    assert not [e for w in windows for e in w.errors()]


@pytest.mark.browser
def test_micropython_and_pyodide_windows_talk(server, open_window):
    windows = open_nodes(server, open_window, cluster_name("mixed"), nodes=(0, 1),
                         runtimes={1: "py"})
    wait_mesh(windows, timeout=30.0)
    exchange_all(windows, "mixed")


@pytest.mark.browser
@pytest.mark.parametrize("closer, runtime", [(0, "mpy"), (1, "mpy"), (1, "py")],
                         ids=["offerer-closes", "answerer-closes", "answerer-closes-pyodide"])
def test_closed_channel_is_reestablished(server, open_window, closer, runtime):
    windows = open_nodes(server, open_window, cluster_name("close"), nodes=(0, 1),
                         runtimes={0: runtime, 1: runtime})
    wait_mesh(windows, timeout=30.0)
    offers_before = state(windows[0])["stats"]["offers"]
    other = "1" if closer == 0 else "0"
    windows[closer].page.evaluate("p => wtClose(p)", other)
    for w, peer in ((windows[0], "1"), (windows[1], "0")):
        wait_until(lambda: [peer, False] in state(w)["events"], what="channel seen closed")
    wait_mesh(windows)
    for w, peer in ((windows[0], "1"), (windows[1], "0")):
        assert state(w)["events"] == [[peer, True], [peer, False], [peer, True]]
    assert state(windows[0])["stats"]["offers"] > offers_before  # a fresh offer
    exchange_all(windows, "again")


@pytest.mark.browser
def test_reloaded_window_gets_a_new_channel(server, open_window):
    windows = open_nodes(server, open_window, cluster_name("reload"))
    wait_mesh(windows)
    for reload in (1, 0):  # the answerer (to 0) and the offerer (to 1, 2)
        windows[reload].page.reload()
        windows[reload].page.wait_for_selector("body[data-ready]", state="attached")
        wait_mesh(windows)
        exchange_all(windows, f"after-reload-{reload}")


@pytest.mark.browser
def test_messages_flow_while_the_introducer_is_down(introducer, open_window):
    windows = open_nodes(introducer, open_window, cluster_name("down"))
    wait_mesh(windows)
    introducer.stop()
    for w in windows:
        wait_until(lambda: not state(w)["introducer_up"], what="introducer seen down")
    exchange_all(windows, "no-introducer")
    assert all(state(w)["up"] for w in windows)

    # a channel closed meanwhile cannot be re-made (no signaling) ...
    windows[1].page.evaluate("wtClose('2')")
    wait_until(lambda: "2" not in state(windows[1])["up"], what="1-2 closed")
    assert send(windows[1], "2", "lost") == "false"
    assert send(windows[1], "0", "still-there") == "true"
    wait_until(lambda: "still-there" in state(windows[0])["log"].get("1", []), what="1->0")

    # ... until the introducer is back: the windows rejoin and repair the mesh
    introducer.start()
    for w in windows:
        wait_until(lambda: state(w)["presence"] == ["0", "1", "2"], timeout=30.0,
                   what="rejoined after restart")
    wait_mesh(windows, timeout=30.0)
    exchange_all(windows, "repaired")


@pytest.mark.browser
def test_bad_sends_get_clear_errors_and_lose_nothing(server, open_window):
    windows = open_nodes(server, open_window, cluster_name("bad"), nodes=(0, 1))
    wait_mesh(windows)
    w0 = windows[0]
    big = w0.page.evaluate("wtSendRaw('1', 'x'.repeat(65537))")
    assert big.startswith("error: MessageTooLarge") and "65537 bytes" in big
    wide = w0.page.evaluate("wtSendRaw('1', '\u00e9'.repeat(40000))")  # 80,000 UTF-8 bytes
    assert wide.startswith("error: MessageTooLarge")
    assert w0.page.evaluate("wtSendNonStr('1')").startswith("error: TypeError")
    assert send(w0, "9", "nobody") == "false"
    exact = w0.page.evaluate("wtSendRaw('1', 'T' + 'y'.repeat(65535))")  # exactly 64 KiB
    assert exact == "true"
    exchange_all(windows, "after-errors")
    s0 = state(w0)
    assert s0["stats"]["dropped_no_channel"] == 1
    assert state(windows[1])["counts"]["0"] == 2  # the 64 KiB one and the exchange


@pytest.mark.browser
def test_join_proves_the_access_secret_from_the_fragment(start_introducer, open_window, tmp_path):
    secret = "a-test-access-secret-of-32-chars"
    (tmp_path / "access").write_text(secret)
    srv = start_introducer("--secret-file", str(tmp_path / "access"))
    cluster = cluster_name("auth")
    windows = []
    for n in (0, 1):
        url = f"{srv.base(n)}/transport_harness?cluster={cluster}&node={n}#access={secret}"
        windows.append(open_window(url, wait_for="body[data-ready]"))
    wait_mesh(windows)
    exchange_all(windows, "proven")
    # the secret left the address bar for the origin's storage; a reload still joins
    w0 = windows[0]
    assert "access" not in w0.page.url and "#" not in w0.page.url
    assert w0.page.evaluate("localStorage.getItem('wraft.access')") == secret
    w0.page.reload()
    w0.page.wait_for_selector("body[data-ready]", state="attached")
    wait_mesh(windows)
    # a wrong secret, or none, is refused with a clear error, and the window stops retrying
    bad = open_window(f"{srv.base(2)}/transport_harness?cluster={cluster}&node=2#access={'x' * 32}",
                      wait_for="body[data-ready]")
    wait_until(lambda: state(bad)["error"] == "auth_failed", what="auth_failed")
    none = open_window(f"{srv.base(3)}/transport_harness?cluster={cluster}&node=3",
                       wait_for="body[data-ready]")
    wait_until(lambda: state(none)["error"] == "auth_required", what="auth_required")
    time.sleep(1)
    for w in (bad, none):
        assert state(w)["stats"]["introducer_connects"] == 1
    assert state(windows[1])["presence"] == ["0", "1"]


@pytest.mark.browser
def test_backpressure_queues_then_drops_only_beyond_the_queue_limit(server, open_window):
    windows = open_nodes(server, open_window, cluster_name("pressure"), nodes=(0, 1))
    wait_mesh(windows)
    w0 = windows[0]

    def burst(n, size):
        w0.page.evaluate("([n, s]) => wtBenchOneway('1', n, s)", [n, size])
        if not state(w0)["bench"]["end_sent"]:  # the queue was full: retry the end marker
            wait_until(lambda: w0.page.evaluate("wtSendRaw('1', 'E')") == "true",
                       what="end marker accepted")
        try:
            return wait_until(lambda: (b := state(w0)["bench"])["state"] == "done" and b,
                              timeout=60.0, what="burst acknowledged")
        except AssertionError:  # show both ends' counters in the report
            print(state(w0)["stats"], state(w0)["bench"], state(windows[1])["stats"])
            raise

    b = burst(3000, 1024)  # 3 MB: over the 1 MiB high-water mark, under the 4 MiB queue
    s = state(w0)["stats"]
    assert s["queued"] > 0 and s["dropped_queue_full"] == 0
    assert b["sent"] == 3000 and b["received"] == 3000

    b = burst(8000, 1024)  # 8 MB in one go: the queue fills, send() says False
    s = state(w0)["stats"]
    assert b["sent"] < 8000
    assert s["dropped_queue_full"] >= 8000 - b["sent"]  # every refusal is counted
    assert b["received"] == b["sent"]  # everything accepted arrived
    assert s["silent_peers_closed"] == 0  # a flooded peer is not taken for dead
    exchange_all(windows, "after-pressure")


@pytest.mark.browser
def test_unreachable_introducer_is_retried_with_backoff(server, open_window):
    # (On the page's own origin: the CSP lets a page connect nowhere else.)
    nowhere = f"ws://wraft0.localhost:{server.port}/no-introducer-here"
    w = open_window(f"{server.base(0)}/transport_harness?cluster=x&node=0&ws={nowhere}",
                    wait_for="body[data-ready]")
    wait_until(lambda: state(w)["stats"]["introducer_attempts"] >= 3, what="3 attempts")
    s = state(w)
    assert not s["introducer_up"] and s["error"] is None and s["stats"]["introducer_connects"] == 0
    assert s["stats"]["introducer_attempts"] < 10  # backoff, not a busy loop


@pytest.mark.browser
def test_bad_introducer_url_is_refused_up_front(server, open_window):
    w = open_window(f"{server.base(0)}/transport_harness?cluster=x&node=0&ws=ftp://127.0.0.1/ws",
                    wait_for="body[data-error]")
    assert "ws_url must start with ws:// or wss://" in w.page.get_attribute("body", "data-error")


@pytest.mark.browser
def test_garbage_signals_are_dropped_counted_and_harmless(server, open_window):
    cluster = cluster_name("garbage")
    windows = open_nodes(server, open_window, cluster, nodes=(0, 1))
    wait_mesh(windows)
    garbage = [
        "not json", [1, 2], {"t": "nonsense"}, {"t": "offer"},  # bad shapes
        {"t": "ice", "s": 1, "c": "{not json"}, {"t": "answer", "s": 5, "sdp": 7},
        {"t": "offer", "s": 3, "sdp": "v=0 garbage"},  # setRemoteDescription rejects it
    ]
    # a rogue node whose id sorts first, so its offers are in the right direction
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        assert json.loads(ws.recv(5))["type"] == "hello"
        ws.send(json.dumps({"type": "join", "v": 2, "cluster": cluster, "node": "-rogue",
                            "kind": "member"}))
        assert json.loads(ws.recv(5))["type"] == "welcome"
        for to in ("0", "1"):
            for data in garbage:
                ws.send(json.dumps({"type": "signal", "to": to, "data": data}))
        for w in windows:
            wait_until(lambda: state(w)["stats"]["signal_errors"] >= 1, what="bad offer rejected")
            wait_until(lambda: state(w)["stats"]["bad_signals"] >= 4, what="garbage counted")
    exchange_all(windows, "after-garbage")  # the real channel never noticed
    for w, peer in ((windows[0], "1"), (windows[1], "0")):
        assert state(w)["events"] == [[peer, True]]


@pytest.mark.browser
def test_closed_window_goes_down_and_the_rest_of_the_mesh_stays(server, open_window):
    windows = open_nodes(server, open_window, cluster_name("leave"))
    wait_mesh(windows)
    windows[2].page.close()  # it says bye on pagehide (else keepalive would notice in 6 s)
    t0 = time.monotonic()
    for w in windows[:2]:
        wait_until(lambda: state(w)["up"] == [p for p in ("0", "1") if p != state(w)["node"]]
                   and state(w)["presence"] == ["0", "1"], timeout=12.0, what="2 gone, rest up")
    print(f"closed window seen down after {time.monotonic() - t0:.1f} s")
    assert all(state(w)["stats"]["peers_said_bye"] + state(w)["stats"]["silent_peers_closed"] >= 1
               for w in windows[:2])
    exchange_all(windows[:2], "two-left")


@pytest.mark.browser
def test_a_window_of_another_origin_cannot_take_a_held_node_id(server, open_window):
    cluster = cluster_name("dup")
    w0, holder = open_nodes(server, open_window, cluster, nodes=(0, 1))
    wait_mesh([w0, holder])
    # same node id "1" from another origin (no token): refused, the holder stays
    intruder = open_window(f"{server.base(2)}/transport_harness?cluster={cluster}&node=1",
                           wait_for="body[data-ready]")
    wait_until(lambda: state(intruder)["error"] == "id_held", what="intruder told the id is held")
    assert state(holder)["error"] is None and state(holder)["introducer_up"]
    assert send(w0, "1", "to-holder") == "true"
    wait_until(lambda: "to-holder" in state(holder)["log"].get("0", []), what="0 -> holder")
    assert state(w0)["events"] == [["1", True]]  # the channel never moved
    attempts = state(intruder)["stats"]["introducer_attempts"]
    time.sleep(2)
    assert state(intruder)["stats"]["introducer_attempts"] == attempts  # no reconnect storm
    # the holder's own reload presents its token and takes the id back at once
    holder.page.reload()
    holder.page.wait_for_selector("body[data-ready]", state="attached")
    wait_until(lambda: state(holder)["introducer_up"] and state(holder)["up"] == ["0"],
               what="reloaded holder back")
    assert state(holder)["error"] is None


@pytest.mark.browser
def test_ice_servers_come_from_the_welcome_frame(start_introducer, open_window):
    # a STUN server on loopback that does not exist: host candidates still connect
    srv = start_introducer("--ice-server", "stun:127.0.0.1:3478")
    windows = open_nodes(srv, open_window, cluster_name("ice"), nodes=(0, 1))
    wait_mesh(windows)
    assert state(windows[0])["ice_servers"] == [{"urls": "stun:127.0.0.1:3478"}]
    exchange_all(windows, "with-stun")


@pytest.mark.browser
def test_busy_window_is_not_taken_for_a_dead_one(server, open_window):
    w0, w1 = open_nodes(server, open_window, cluster_name("busy"), nodes=(0, 1))
    wait_mesh([w0, w1])
    # window 1's page thread blocks for 8 s (> the 6 s silence limit); its
    # network thread still acknowledges, so window 0 must keep the channel
    w1.page.evaluate("setTimeout(() => { const t = Date.now(); while (Date.now() - t < 8000); })")
    deadline = time.monotonic() + 9.0
    while time.monotonic() < deadline:
        s = state(w0)
        assert s["up"] == ["1"] and s["stats"]["silent_peers_closed"] == 0, s["stats"]
        time.sleep(0.5)
    exchange_all([w0, w1], "after-busy")
    assert state(w0)["events"] == [["1", True]]


@pytest.mark.browser
def test_stopped_transport_closes_its_channels_and_stays_away(server, open_window):
    w0, w1 = open_nodes(server, open_window, cluster_name("stop"), nodes=(0, 1))
    wait_mesh([w0, w1])
    w1.page.evaluate("wtStop()")
    wait_until(lambda: state(w0)["up"] == [] and state(w0)["presence"] == ["0"],
               what="node 1 gone")
    s1 = state(w1)
    assert s1["up"] == [] and not s1["introducer_up"]
    assert send(w1, "0", "after-stop") == "false"
    time.sleep(2)
    assert state(w1)["stats"]["introducer_attempts"] == s1["stats"]["introducer_attempts"]
    assert state(w0)["presence"] == ["0"]
