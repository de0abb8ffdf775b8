# Test harness for raft.browser.transport: exposes window.wt* to Playwright.
# Message kinds (first character): T text (logged), P/Q ping/pong for the
# round-trip probe, M one-way payload, E end of a one-way burst, A its ack.
import json
import sys

import js
from pyscript import document, window

from raft.browser.ffi import Proxies
from raft.browser.transport import Transport

params = js.URLSearchParams.new(js.location.search)
cluster = params.get("cluster") or "test"
node = params.get("node") or "0"

log = {}  # peer -> last texts received
counts = {}  # peer -> number of T messages
events = []  # on_peer changes, in order
bench = {"state": "idle"}
burst = {"count": 0}
rtt = {"peer": None, "left": 0, "t0": 0.0}
oneway = {"t0": 0.0, "n": 0}
transport = None


def on_message(peer, text):
    kind = text[0]
    if kind == "M":
        burst["count"] += 1
    elif kind == "P":
        transport.send(peer, "Q")
    elif kind == "Q":
        rtt["left"] -= 1
        if rtt["left"] > 0:
            transport.send(peer, "P")
        else:
            dt = js.performance.now() - rtt["t0"]
            bench.update(state="done", kind="rtt", n=rtt["n"], ms=dt, per_s=rtt["n"] * 1000 / dt)
    elif kind == "E":
        transport.send(peer, "A" + str(burst["count"]))
        burst["count"] = 0
    elif kind == "A":
        dt = js.performance.now() - oneway["t0"]
        got = int(text[1:])
        bench.update(state="done", kind="oneway", n=oneway["n"], received=got, ms=dt,
                     per_s=got * 1000 / dt)
    else:
        counts[peer] = counts.get(peer, 0) + 1
        got = log.setdefault(peer, [])
        got.append(text[1:])
        if len(got) > 20:
            got.pop(0)


def on_peer(peer, up):
    events.append([peer, up])


def wt_state(*_):
    return json.dumps({
        "node": node,
        "up": transport.peers_up(),
        "presence": transport.presence,
        "introducer_up": transport.introducer_up,
        "error": transport.error,
        "keyed": transport.key is not None,
        "key_error": transport.key_error,
        "log": log,
        "counts": counts,
        "events": events,
        "bench": bench,
        "stats": transport.stats,
        "ice_servers": transport.ice_servers,
    })


def wt_send(peer, text):
    try:
        return "true" if transport.send(peer, "T" + text) else "false"
    except Exception as exc:
        return "error: " + type(exc).__name__ + ": " + str(exc)


def wt_send_raw(peer, text):
    try:
        return "true" if transport.send(peer, text) else "false"
    except Exception as exc:
        return "error: " + type(exc).__name__ + ": " + str(exc)


def wt_send_nonstr(peer):
    try:
        transport.send(peer, 42)
        return "accepted"
    except Exception as exc:
        return "error: " + type(exc).__name__ + ": " + str(exc)


def wt_close(peer):
    transport.close_peer(peer)


def wt_stop(*_):
    transport.stop()


def wt_bench_rtt(peer, n):
    bench.clear()
    bench["state"] = "running"
    rtt.update(peer=peer, left=int(n), n=int(n), t0=js.performance.now())
    transport.send(peer, "P")


def wt_bench_oneway(peer, n, size):
    bench.clear()
    bench["state"] = "running"
    n, payload = int(n), "M" + "x" * (int(size) - 1)
    oneway.update(n=n, t0=js.performance.now())
    sent = 0
    for _ in range(n):
        if transport.send(peer, payload):
            sent += 1
    bench["end_sent"] = transport.send(peer, "E")  # False when the queue is full
    bench["sent"] = sent
    bench["send_ms"] = js.performance.now() - oneway["t0"]  # the sender's own cost


try:
    transport = Transport(cluster, node, on_message, on_peer=on_peer,
                          ws_url=params.get("ws") or None)
except ValueError as exc:  # bad page parameters: show them, start nothing
    document.body.setAttribute("data-error", str(exc))
    raise
proxies = Proxies()
for name, fn in (
    ("wtState", wt_state),
    ("wtSend", wt_send),
    ("wtSendRaw", wt_send_raw),
    ("wtSendNonStr", wt_send_nonstr),
    ("wtClose", wt_close),
    ("wtStop", wt_stop),
    ("wtBenchRtt", wt_bench_rtt),
    ("wtBenchOneway", wt_bench_oneway),
):
    setattr(window, name, proxies.make(fn))
transport.start()
document.getElementById("status").textContent = "node " + node + " of " + cluster + " started"
document.body.setAttribute("data-py-impl", sys.implementation.name)
document.body.setAttribute("data-ready", "1")
