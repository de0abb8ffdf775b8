"""Log compaction through the browser driver and in three windows (issue 6).

1. CPython (no browser): the real Driver + RecordLog over in-memory stores:
   snapshots are persisted from Readies, a node restarts from snapshot + tail,
   and a node that was away rejoins through InstallSnapshot; storage bounded.
2. E2E (headless Chromium, inside scripts/in-netns), KV app (/kv):
   one window closed while the others commit 5,000 pipelined writes reopens,
   rejoins through a snapshot and converges; every window's localStorage
   stays under 512 KiB through 20,000 writes over a bounded key set (the
   benchmark, `python -m benchmarks compaction`, does 100,000).

    scripts/in-netns .venv/bin/pytest tests/browser/test_compaction.py -x -q
"""

import asyncio
import json
import random
import time

import pytest

from raft.runtime.driver import Driver, node_storage, open_log
from raft.browser.page_config import DEFAULT_SNAPSHOT_ENTRIES, PageConfigError, resolve
from raft.runtime.contract import GuardedState
from raft.config import Config
from raft.node import Node
from raft.records import MemoryKV, RecordLog

from test_node_driver import FakeTransport, Net, clock, in_own_loop, leaders, wait_for

FAST = dict(election_min_ms=150, election_max_ms=300, heartbeat_ms=20)
STORAGE_BOUND = 512 * 1024   # characters of localStorage per window (KV app, 50 keys)


# ------------------------------------------------------------------ markup
def snapshot_thresholds(attrs):
    cfg = resolve(attrs, "wraft0.localhost", "/kv", {})
    return cfg["snapshot_entries"], cfg["snapshot_bytes"]


def test_snapshot_thresholds_from_markup():
    assert snapshot_thresholds({}) == (DEFAULT_SNAPSHOT_ENTRIES, 256 * 1024)
    assert snapshot_thresholds({"snapshot-entries": "500", "snapshot-bytes": "0"}) == (500, 0)
    for bad in ({"snapshot-entries": "-1"}, {"snapshot-bytes": "1e6"},
                {"snapshot-entries": "x"}, {"snapshot-bytes": str(1 << 31)}):
        with pytest.raises(PageConfigError, match="snapshot-"):
            snapshot_thresholds(bad)


# ------------------------------------------------------------------ driver (CPython)
class Keys:
    """A KV-like app state over a bounded key set."""

    def __init__(self):
        self.data = {}

    def apply(self, command):
        key, value = command
        self.data[key] = value
        return value

    def snapshot(self):
        return [[k, self.data[k]] for k in sorted(self.data)]

    def restore(self, data):
        self.data = dict((k, v) for k, v in data)


def make(net, nid, kv, snapshot_entries=100):
    log, restored = open_log(kv, "t", nid)
    state = Keys()
    node = Node(nid, ["0", "1", "2"],
                config=Config(snapshot_entries=snapshot_entries, snapshot_bytes=0,
                              max_bytes_per_msg=4000, **FAST),
                rng=random.Random(nid).random, state_machine=GuardedState(state),
                storage=node_storage(restored), now_ms=clock())
    d = Driver(node, log, FakeTransport(net, nid), clock, restored=restored)
    d.app_state = state
    net.drivers[nid] = d
    d.start("%s-%08x" % (nid, random.getrandbits(32)))
    return d


async def write_many(ds, n, start=0):
    """n writes over 50 keys, 32 in flight, spread over the live drivers."""
    sem = asyncio.Semaphore(32)

    async def one(i):
        async with sem:
            await ds[i % len(ds)].propose(["k%d" % (i % 50), "v%d-%s" % (i, "x" * 40)])
    await asyncio.gather(*[one(i) for i in range(start, start + n)])


def used(kv, nid):
    return RecordLog(kv, "t", nid).bytes_used()


@in_own_loop
async def test_driver_persists_snapshots_restarts_from_them_and_rejoins_by_install():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    await write_many(ds, 600)
    # every node took and stored snapshots; the stored log is bounded
    for i, d in enumerate(ds):
        assert d.stats.get("snapshots_saved", 0) >= 2, d.stats
        r = RecordLog(kvs[i], "t", str(i)).load()
        assert r.snapshot is not None and len(r.entries) <= 300
    # window 2 goes away; the others commit 1,000 more writes
    away = ds[2]
    away.stop()
    del net.drivers["2"]
    net.cut.add("2")
    await write_many(ds[:2], 1000, 600)
    # it comes back from its own storage: snapshot + tail ...
    net.cut.discard("2")
    back = make(net, "2", kvs[2])
    assert back.node.first_index() > 1 and back.node.applied_index >= back.node.first_index() - 1
    # ... and catches up through the leader's snapshot (its log was compacted)
    lead = leaders(net)[0]
    await wait_for(lambda: back.node.applied_index >= lead.node.commit_index - 5, 20)
    await ds[0].propose(["end", 1])
    await wait_for(lambda: all(d.app_state.data.get("end") == 1 for d in (ds[0], ds[1], back)))
    assert back.node.stats.get("snapshots_installed", 0) >= 1
    assert back.app_state.data == ds[0].app_state.data == ds[1].app_state.data
    assert len(back.app_state.data) == 51
    for i in range(3):
        assert used(kvs[i], str(i)) < 100_000, used(kvs[i], str(i))
    # a full restart of every node keeps the committed state
    want = dict(ds[0].app_state.data)
    for d in (ds[0], ds[1], back):
        d.stop()
    net.drivers.clear()
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: all(d.app_state.data == want for d in ds))
    for d in ds:
        d.stop()


# ------------------------------------------------------------------ e2e (browser)
PIPELINE_JS = """async ([n, start, keys, inflight]) => {
  // bench-style pipelined writes through window.wraft: `inflight` at a time
  let next = start, failed = 0, firstError = null;
  const end = start + n;
  async function worker() {
    while (next < end) {
      const i = next++;
      const out = JSON.parse(await wraft.propose(JSON.stringify(["put", "k" + (i % keys), "v" + i])));
      if (!("ok" in out)) { failed++; if (firstError === null) firstError = out.error; }
    }
  }
  await Promise.all(Array.from({length: inflight}, worker));
  return {failed, firstError};
}"""

STORAGE_JS = """() => { let n = 0; for (let k = 0; k < localStorage.length; k++) {
  const key = localStorage.key(k); n += key.length + localStorage.getItem(key).length } return n }"""


def pipelined(page, n, start=0, keys=50, inflight=64):
    out = page.evaluate(PIPELINE_JS, [n, start, keys, inflight])
    assert out["failed"] == 0, out
    return out


@pytest.fixture(scope="module")
def win(browser, server):
    from app_windows import Windows
    w = Windows(browser, server)
    yield w
    w.close()


@pytest.fixture
def _dump_on_failure(request, win):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        win.dump()


def _leader(win, nodes):
    for i in nodes:
        s = win.status(i)
        if s["role"] == "leader":
            return i
    return nodes[0]


def _applied(win, i):
    return win.status(i)["applied"]


@pytest.mark.browser
def test_closed_window_rejoins_through_a_snapshot_and_storage_stays_bounded(win, _dump_on_failure):
    from browser_helpers import wait_until
    extra = {i: "" for i in range(3)}
    win.open("/kv", "compact", extra=extra)
    lead = _leader(win, (0, 1, 2))
    pipelined(win.pages[lead], 500)
    # window 2 (or another follower) closes; the others commit 5,000 writes
    gone = [i for i in range(3) if i != lead][0]
    alive = [i for i in range(3) if i != gone]
    win.leave([gone])
    wait_until(lambda: _leader(win, alive) is not None and win.status(lead)["quorum"], 20,
               what="leader keeps its quorum")
    lead = _leader(win, alive)
    pipelined(win.pages[lead], 5000, start=500)
    snaps = win.status(lead)["node_stats"].get("snapshots_taken", 0)
    assert snaps >= 2, win.status(lead)["node_stats"]
    # it reopens: loads its snapshot + tail, then catches up through InstallSnapshot
    t0 = time.monotonic()
    page = win.pages[gone]
    page.goto(win.url(gone, "/kv"))
    page.wait_for_selector("html[data-raft-role]", state="attached", timeout=30_000)
    target = win.status(lead)["commit"]
    wait_until(lambda: _applied(win, gone) >= target, 60, what="reopened window catches up")
    catch_up_s = time.monotonic() - t0
    state = win.converged(timeout=30)
    assert len(state["data"]) == 50
    installed = win.status(gone)["node_stats"].get("snapshots_installed", 0)
    assert installed >= 1, win.status(gone)["node_stats"]
    print("catch_up_s=%.2f (reopen + load + install)" % catch_up_s)
    # many more writes: every window's localStorage stays bounded
    peak = [0, 0, 0]
    lead = _leader(win, (0, 1, 2))
    for k in range(5):
        pipelined(win.pages[lead], 3000, start=5500 + 3000 * k)
        for i in range(3):
            peak[i] = max(peak[i], win.pages[i].evaluate(STORAGE_JS))
    win.converged(timeout=30)
    print("localStorage peak chars per window after 20,500 writes:", peak)
    assert all(p < STORAGE_BOUND for p in peak), peak
    assert not win.errors(), win.errors()
