"""Throughput probe: what raft.browser.transport costs over a raw data channel.

Prints figures (medians of a few runs) side by side with a raw-JS data
channel between the same two windows; asserts only that every message arrived, never
a speed. Run it alone to see the table:
    scripts/in-netns .venv/bin/pytest tests/browser/test_transport_probe.py -q -s
"""

import statistics

import pytest

from browser_helpers import cluster_name, open_nodes, state, wait_mesh, wait_until

RUNS = 3
RTT_N = 1000
ONEWAY = [(20000, 32), (2000, 1024)]  # (messages, bytes each)

# A raw JS data channel between the same two windows, signaled by the test
# itself (whole SDP after gathering, no trickle): the baseline the transport
# is compared with. Window 1 echoes; window 0 measures.
GATHERED = """pc => new Promise(r => { if (pc.iceGatheringState === "complete") r();
  else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); })"""
RAW_OFFER = """async () => {
  const gathered = %s;
  const pc = window.rawPc = new RTCPeerConnection();
  window.rawDc = pc.createDataChannel("raw", {negotiated: true, id: 7});
  await pc.setLocalDescription(); await gathered(pc);
  return pc.localDescription.sdp;
}""" % GATHERED
RAW_ANSWER = """async offer => {
  const gathered = %s;
  const pc = window.rawPc = new RTCPeerConnection();
  const dc = window.rawDc = pc.createDataChannel("raw", {negotiated: true, id: 7});
  let got = 0;
  dc.onmessage = e => { const d = e.data;
    if (d === "P") dc.send("Q"); else if (d === "E") { dc.send("A" + got); got = 0; } else got++; };
  await pc.setRemoteDescription({type: "offer", sdp: offer});
  await pc.setLocalDescription(); await gathered(pc);
  return pc.localDescription.sdp;
}""" % GATHERED
RAW_CONNECT = """async answer => {
  await window.rawPc.setRemoteDescription({type: "answer", sdp: answer});
  await new Promise(r => { rawDc.readyState === "open" ? r() : rawDc.onopen = r; });
}"""
RAW_BENCH = """async ([rttN, onewayN, size]) => {
  const dc = window.rawDc, out = {};
  await new Promise(done => {
    let left = rttN; const t0 = performance.now();
    dc.onmessage = e => { if (--left > 0) dc.send("P");
      else { out.rtt = rttN * 1000 / (performance.now() - t0); done(); } };
    dc.send("P");
  });
  await new Promise(done => {
    const payload = "M" + "x".repeat(size - 1); const t0 = performance.now();
    dc.onmessage = e => { out.got = +e.data.slice(1);
      out.oneway = out.got * 1000 / (performance.now() - t0); done(); };
    for (let i = 0; i < onewayN; i++) dc.send(payload);
    dc.send("E");
  });
  return out;
}"""


def raw_channel(w0, w1):
    offer = w0.page.evaluate(RAW_OFFER)
    answer = w1.page.evaluate(RAW_ANSWER, offer)
    w0.page.evaluate(RAW_CONNECT, answer)


def run_bench(w, start_js, args):
    w.page.evaluate(start_js, args)
    return wait_until(lambda: (s := state(w)["bench"])["state"] == "done" and s, timeout=60.0,
                      what="bench done")


@pytest.mark.browser
@pytest.mark.parametrize("runtime", ["mpy", "py"])
def test_transport_throughput_probe(server, open_window, capsys, runtime):
    windows = open_nodes(server, open_window, cluster_name("probe-" + runtime), nodes=(0, 1),
                         runtimes={0: runtime, 1: runtime})
    wait_mesh(windows, timeout=30.0)
    w0 = windows[0]
    raw_channel(*windows)
    rows, send_rates = [], []

    rtts = [run_bench(w0, "n => wtBenchRtt('1', n)", RTT_N)["per_s"] for _ in range(RUNS)]
    raw_rtts = [w0.page.evaluate(RAW_BENCH, [RTT_N, 10, 32])["rtt"] for _ in range(RUNS)]
    rows.append(("round trips/s (sequential)", statistics.median(rtts),
                 statistics.median(raw_rtts)))

    for n, size in ONEWAY:
        rates, raws, sends = [], [], []
        for _ in range(RUNS):
            b = run_bench(w0, "([n, s]) => wtBenchOneway('1', n, s)", [n, size])
            assert b["sent"] == n and b["received"] == n, b  # nothing lost or dropped
            rates.append(b["per_s"])
            sends.append(n * 1000 / b["send_ms"])
            raw = w0.page.evaluate(RAW_BENCH, [10, n, size])
            assert raw["got"] == n
            raws.append(raw["oneway"])
        rows.append((f"one-way msgs/s, {n} x {size} B", statistics.median(rates),
                     statistics.median(raws)))
        send_rates.append((f"{n} x {size} B", statistics.median(sends)))

    with capsys.disabled():
        print(f"\ntransport probe ({'MicroPython' if runtime == 'mpy' else 'Pyodide'}, "
              f"2 windows; median of {RUNS}; raw = plain JS data channel between the same windows)")
        print(f"  {'measure':34} {'transport':>10} {'raw JS':>10} {'ratio':>6}")
        for name, ours, raw in rows:
            print(f"  {name:34} {ours:10.0f} {raw:10.0f} {ours / raw:6.2f}")
        for name, rate in send_rates:
            print(f"  send() calls/s alone, {name}: {rate:.0f}")
    assert state(w0)["stats"]["dropped_queue_full"] == 0
    assert state(w0)["stats"]["silent_peers_closed"] == 0
