"""What this browser on this machine allows at best, measured beside the bench.

Two measures, both in plain JS, no Python, so they bound what any Raft in
these windows could reach:

- floor(): a second RTCPeerConnection between two bench windows (signaled
  through the runner, host candidates in the private namespace) and a
  ping-pong over it: bare round trips, and "write round trips", where each
  side stores the message in localStorage before it answers, the least
  persistence a replicated write needs (the leader's log write and a
  follower's before its ack). Sequential Raft writes are compared with the
  latter: `seq_to_floor_ratio`.
- NATIVE_TIMERS (an init script, profiled runs only): the wall time of every
  RTCDataChannel.send and Storage.setItem the page makes, Raft's own calls
  included, read with native_costs(). On a loaded 2-core machine the same
  call costs several times more right after the page ran Python for a while
  than in a bare ping-pong, which is what bounds the write path.
"""

import json

# A one-entry AppendEntries as raft/codec.py writes it, and a log record's size.
MESSAGE = '["a","0","1",3,41,3,[[3,"c-1a2b3c4d",17,1]],40]'
RECORD = "x" * 120
KEY_PREFIX = "wraft-floor:"

_OPEN = r"""async (remote) => {
  const pc = new RTCPeerConnection();
  window.__floor = {pc, dc: pc.createDataChannel("floor", {negotiated: true, id: 0, ordered: true})};
  if (remote) await pc.setRemoteDescription(remote);
  await pc.setLocalDescription();
  await new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error("ICE gathering took over 10 s")), 10000);
    const done = () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); ok(); } };
    pc.onicegatheringstatechange = done; done();
  });
  return {type: pc.localDescription.type, sdp: pc.localDescription.sdp};
}"""
_CONNECT = "async (answer) => { await __floor.pc.setRemoteDescription(answer) }"
_ECHO = r"""([persist, prefix, record]) => {
  const f = __floor; let n = 0;
  f.dc.onmessage = (e) => { n++; if (persist) localStorage.setItem(prefix + (n % 64), record + n);
                            f.dc.send(e.data); };
}"""
_PING = r"""([ms, persist, prefix, record, message]) => new Promise((ok, fail) => {
  const f = __floor;
  const opened = () => {
    let n = 0; const t0 = performance.now();
    const stall = setTimeout(() => fail(new Error("floor: no answer")), ms + 5000);
    f.dc.onmessage = () => {
      n++;
      const t = performance.now();
      if (t - t0 >= ms) { clearTimeout(stall); ok({count: n, per_s: n * 1000 / (t - t0)}); return; }
      if (persist) localStorage.setItem(prefix + (n % 64), record + n);
      f.dc.send(message);
    };
    if (persist) localStorage.setItem(prefix + 0, record);
    f.dc.send(message);
  };
  if (f.dc.readyState === "open") opened();
  else { f.dc.onopen = opened; setTimeout(() => fail(new Error("floor: channel did not open")), 10000); }
})"""
_CLOSE = r"""(prefix) => {
  if (window.__floor) { __floor.dc.close(); __floor.pc.close(); window.__floor = null; }
  // keys first: removing reorders what key(i) returns
  for (const k of Object.keys(localStorage)) if (k.startsWith(prefix)) localStorage.removeItem(k);
}"""


def floor(pages, a, b, duration_s):
    """JS-only round trips between windows a and b (Playwright pages), bare
    and with one localStorage write on each side per trip: per second."""
    pa, pb = pages[a], pages[b]
    try:
        offer = pa.evaluate(_OPEN, None)
        answer = pb.evaluate(_OPEN, offer)
        pa.evaluate(_CONNECT, answer)
        out = {}
        for persist, key in ((False, "js_rtt_per_s"), (True, "js_write_rtt_per_s")):
            pb.evaluate(_ECHO, [persist, KEY_PREFIX, RECORD])
            got = pa.evaluate(_PING, [int(duration_s * 1000), persist, KEY_PREFIX, RECORD, MESSAGE])
            out[key] = round(got["per_s"], 1)
        return out
    finally:
        for p in (pa, pb):
            p.evaluate(_CLOSE, KEY_PREFIX)


NATIVE_TIMERS = r"""
(() => {
  const timed = (proto, name, into) => {
    const orig = proto[name];
    proto[name] = function (...args) {
      const t = performance.now();
      try { return orig.apply(this, args); } finally { into[0] += performance.now() - t; into[1]++; }
    };
  };
  window.__native = {send: [0, 0], setItem: [0, 0]};
  timed(RTCDataChannel.prototype, "send", __native.send);
  timed(Storage.prototype, "setItem", __native.setItem);
})();
"""


def reset_native(page):
    page.evaluate("() => { for (const v of Object.values(__native)) { v[0] = 0; v[1] = 0; } }")


def native_costs(page):
    """{"send": [calls, mean us], "setItem": [calls, mean us]} since the last reset."""
    raw = json.loads(page.evaluate("() => JSON.stringify(__native)"))
    return {k: [n, round(1000 * ms / n, 1) if n else None] for k, (ms, n) in raw.items()}
