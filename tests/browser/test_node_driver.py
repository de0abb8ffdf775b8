"""The browser driver's Ready loop, in CPython: real raft.Node, real
RecordLog over an in-memory store, an in-process transport. No browser, no js:
driver.py takes its clock, store and transport as arguments."""

import asyncio
import random
import threading
import time

import pytest

from raft import codec
from raft.runtime.driver import Driver, open_log
from raft.runtime.contract import GuardedState, ProposalError
from raft.config import Config
from raft.node import Node
from raft.records import DamagedStorage, MemoryKV, RecordLog, StorageFull

FAST = dict(election_min_ms=150, election_max_ms=300, heartbeat_ms=20)


class Net:
    """Delivers each message on a later loop turn; nodes can be cut off."""

    def __init__(self):
        self.drivers = {}
        self.cut = set()

    def deliver(self, src, dst, text):
        d = self.drivers.get(dst)
        if d is not None and src not in self.cut and dst not in self.cut:
            d.on_message(src, text)


class FakeTransport:
    def __init__(self, net, me):
        self.net, self.me, self.stats = net, me, {}

    def send(self, peer, text):
        asyncio.get_event_loop().call_soon(self.net.deliver, self.me, peer, text)
        return True

    def peers_up(self):
        return sorted(p for p in self.net.drivers if p != self.me and p not in self.net.cut)


class Counter:
    def __init__(self):
        self.ops = []

    def apply(self, command):
        if not isinstance(command, int):
            raise TypeError("need an int")
        self.ops.append(command)
        return len(self.ops)

    def snapshot(self):
        return list(self.ops)

    def restore(self, data):
        self.ops = list(data)


def clock():
    return int(time.monotonic() * 1000)


def make(net, nid, kv, size=3, timing=FAST, lazy_commit=False):
    log, restored = open_log(kv, "t", nid, lazy_commit=lazy_commit)
    stored = None
    if restored.entries or restored.term:
        stored = ([restored.term, restored.vote, restored.commit], restored.entries)
    state = Counter()
    node = Node(nid, [str(i) for i in range(size)], config=Config(**timing),
                rng=random.Random(nid).random, state_machine=GuardedState(state),
                storage=stored, now_ms=clock())
    d = Driver(node, log, FakeTransport(net, nid), clock, restored=restored)
    d.app_state = state
    net.drivers[nid] = d
    d.start("%s-%08x" % (nid, random.getrandbits(32)))  # one client id per incarnation
    return d


async def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def in_own_loop(scenario):
    """Run an async scenario on a fresh event loop in its own thread: the
    Playwright fixtures of this directory keep a loop running in the main
    thread, so asyncio tests would clash with them."""
    def test(*args, **kwargs):
        box = {}

        def run():
            try:
                asyncio.run(scenario(*args, **kwargs))
            except BaseException as e:  # re-raised in the test thread
                box["error"] = e
        t = threading.Thread(target=run)
        t.start()
        t.join(120)
        assert not t.is_alive(), "scenario hung"
        if "error" in box:
            raise box["error"]
    test.__name__ = scenario.__name__
    return test


def leaders(net):
    return [d for d in net.drivers.values() if d.node.role == "leader" and d.error is None]


@in_own_loop
async def test_writes_from_every_node_apply_everywhere_in_one_order():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    results = await asyncio.gather(*[ds[i % 3].propose(i) for i in range(30)])
    assert sorted(results) == list(range(1, 31))
    await wait_for(lambda: all(len(d.app_state.ops) == 30 for d in ds))
    assert ds[0].app_state.ops == ds[1].app_state.ops == ds[2].app_state.ops
    assert sorted(ds[0].app_state.ops) == list(range(30))
    # Batching: far fewer persisted batches than entries on the leader.
    lead = leaders(net)[0]
    assert lead.stats["persist_batches"] < 30
    info = lead.status()
    assert info["quorum"] and info["role"] == "leader" and info["commit"] >= 31
    # A linearizable read on a follower sees every acknowledged write.
    follower = next(d for d in ds if d is not lead)
    await follower.read()
    assert len(follower.app_state.ops) == 30
    for d in ds:
        d.stop()


@in_own_loop
async def test_after_its_session_expired_a_page_writes_on_as_a_new_client():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    small = dict(FAST, max_sessions=2)
    ds = [make(net, str(i), kvs[i], timing=small) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    lead = leaders(net)[0]
    page = next(d for d in ds if d is not lead)
    assert await page.propose(1) == 1
    first_id = page.client_id
    # Two other clients write: the table keeps 2, so the page's session goes.
    for k, other in enumerate(("cother1", "cother2")):
        lead.node.propose(other, 1, 10 + k)
        lead._kick()
    await wait_for(lambda: all(len(d.app_state.ops) == 3 for d in ds))
    with pytest.raises(ProposalError) as e:
        await page.propose(2)
    assert e.value.error == "session_expired" and not e.value.retryable
    assert page.client_id != first_id and page.stats["new_sessions"] == 1
    # The next write is a new client's first: applied, once, everywhere.
    assert await page.propose(3) == 4
    await wait_for(lambda: all(d.app_state.ops == [1, 10, 11, 3] for d in ds))
    for d in ds:
        d.stop()


@in_own_loop
async def test_the_status_says_on_how_many_windows_the_last_write_is():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    lead = leaders(net)[0]
    away, follower = [d for d in ds if d is not lead]
    net.cut.add(away.node.id)
    await lead.propose(1)
    # the leader knows its followers' match indexes: exactly 2 of 3
    assert lead.status()["last_write"] == {"committed": True, "error": None, "on": 2, "exact": True}
    await follower.propose(2)
    # a follower knows only that a committed entry is on a majority
    assert follower.status()["last_write"]["on"] == 2
    assert follower.status()["last_write"]["exact"] is False
    net.cut.discard(away.node.id)
    await wait_for(lambda: lead.status()["last_write"]["on"] == 3)
    for d in ds:
        d.stop()


@in_own_loop
async def test_restart_from_storage_rebuilds_state_and_keeps_acknowledged_writes():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    for i in range(10):
        await ds[i % 3].propose(i)
    for d in ds:
        d.stop()
    net.drivers.clear()
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    # The committed prefix is re-applied from the log before any new traffic.
    await wait_for(lambda: all(len(d.app_state.ops) >= 10 for d in ds))
    await wait_for(lambda: len(leaders(net)) == 1)
    await ds[1].propose(99)
    await wait_for(lambda: all(d.app_state.ops[-1:] == [99] for d in ds))
    assert ds[0].app_state.ops[:10] == list(range(10))
    for d in ds:
        d.stop()


@in_own_loop
async def test_full_storage_halts_the_node_without_acknowledging():
    net = Net()
    kvs = [MemoryKV(), MemoryKV(), MemoryKV()]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    victim = leaders(net)[0]
    victim.log.kv.quota = victim.log.kv.used() + 50  # room for nothing much
    with pytest.raises(ProposalError) as e:
        await victim.propose(7)
    assert e.value.error == "halted"
    assert "localStorage is full" in victim.error
    assert victim.status()["quorum"] is False
    # Its last write is not counted as done, and the others carry on.
    assert victim.status()["last_write"]["committed"] is False
    others = [d for d in ds if d is not victim]
    await wait_for(lambda: any(d.node.role == "leader" for d in others), timeout=5)
    assert await others[0].propose(5) >= 1
    before = victim.stats["dropped_halted"]
    await asyncio.sleep(0.2)
    assert victim.stats["dropped_halted"] > before  # it ignores traffic now
    for d in ds:
        d.stop()


@in_own_loop
async def test_garbage_and_spoofed_messages_are_dropped_and_counted():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    d = ds[0]
    for junk in ["", "{", "[1]", '[9,"h","1","0",1,0,0]', "null", "x" * 70000]:
        d.on_message("1", junk)
    assert d.node.stats["dropped_malformed"] == 6
    # Claims to come from node 2 but arrived on node 1's channel.
    d.on_message("1", '[1,"h","2","0",%d,0,0]' % d.node.term)
    assert d.node.stats["dropped_spoofed"] == 1
    assert await d.propose(1) == 1
    for x in ds:
        x.stop()


@in_own_loop
async def test_command_the_app_rejects_fails_that_write_only():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    with pytest.raises(ProposalError) as e:
        await ds[2].propose("not an int")
    assert e.value.error == "command_failed" and "need an int" in e.value.leader
    assert await ds[2].propose(4) == 1
    assert all(x.error is None for x in ds)
    for x in ds:
        x.stop()


@in_own_loop
async def test_minority_commits_nothing_and_says_so():
    saved = Driver.RETRY_MS
    Driver.RETRY_MS = 1000
    try:
        await _minority_scenario()
    finally:
        Driver.RETRY_MS = saved


async def _minority_scenario():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    lone = leaders(net)[0]
    net.cut.update(d.node.id for d in ds if d is not lone)
    await wait_for(lambda: not lone.status()["quorum"], timeout=3)
    commit = lone.node.commit_index
    with pytest.raises(ProposalError):
        await lone.propose(1)
    assert lone.node.commit_index == commit
    net.cut.clear()
    await wait_for(lambda: len(leaders(net)) == 1, timeout=5)
    assert await lone.propose(2) >= 1
    for x in ds:
        x.stop()


def test_damaged_committed_storage_refuses_to_open():
    kv = MemoryKV()
    log, _ = open_log(kv, "t", "0")
    log.save(1, [[1, "c", 1, 5]], term=1, vote="0", commit=1)
    key = "wraft:t:0:log:1"
    kv.data[key] = kv.data[key].replace("5", "6")
    with pytest.raises(DamagedStorage, match="refusing to start"):
        open_log(kv, "t", "0")


SLOW = dict(election_min_ms=3000, election_max_ms=3500, heartbeat_ms=100)


@in_own_loop
async def test_first_election_runs_early_once_a_quorum_of_channels_is_up():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i], timing=SLOW) for i in range(3)]
    t0 = time.monotonic()
    await asyncio.sleep(0.8)
    assert leaders(net) == []  # nothing happens before the channels report up
    for d in ds:  # what the transport does when the channels open
        for p in d.transport.peers_up():
            d.on_peer(p, True)
    await wait_for(lambda: len(leaders(net)) == 1, timeout=2.0)
    # before the 3-3.5 s election timeout counted from the start could fire
    assert time.monotonic() - t0 < 2.9
    assert await leaders(net)[0].propose(1) == 1
    for d in ds:
        d.stop()


@in_own_loop
async def test_a_channel_coming_up_does_not_unsettle_a_known_leader():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i], timing=SLOW) for i in range(3)]
    for d in ds:
        for p in d.transport.peers_up():
            d.on_peer(p, True)
    await wait_for(lambda: len(leaders(net)) == 1, timeout=5.0)
    lead = leaders(net)[0]
    await wait_for(lambda: all(d.node.leader_id == lead.node.id for d in ds), timeout=5.0)
    term = lead.node.term
    follower = next(d for d in ds if d is not lead)
    deadline = follower.node.election_deadline
    follower.on_peer(lead.node.id, True)  # e.g. a channel re-made after a blip
    assert follower.node.election_deadline == deadline
    await asyncio.sleep(0.6)
    assert leaders(net) == [lead] and all(d.node.term == term for d in ds)
    for d in ds:
        d.stop()


@in_own_loop
async def test_a_follower_answers_within_the_message_callback():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    lead = leaders(net)[0]
    follower = next(d for d in ds if d is not lead)
    await wait_for(lambda: follower.node.leader_id == lead.node.id)
    sent = []
    real_send = follower.transport.send
    follower.transport.send = lambda peer, text: sent.append((peer, text)) or True
    # No task switch between receiving and replying (a wake-up through the
    # event loop costs a timer hop in the browser).
    follower.on_message(lead.node.id, '[1,"h","%s","%s",%d,0,0]'
                        % (lead.node.id, follower.node.id, lead.node.term))
    assert [p for p, _ in sent] == [lead.node.id] and '"hr"' in sent[0][1]
    follower.transport.send = real_send
    for d in ds:
        d.stop()


async def settle_leader(drivers):
    net = drivers[0].transport.net
    await wait_for(lambda: len(leaders(net)) == 1 and all(
        d.node.leader_id == leaders(net)[0].node.id for d in drivers))
    lead = leaders(net)[0]
    await lead.propose(0)  # the leader's term has an entry committed: writes are quick
    await wait_for(lambda: all(d.app_state.ops == [0] for d in drivers))
    for d in drivers:
        d.app_state.ops.clear()
    return lead


@in_own_loop
async def test_the_leader_sends_appendentries_before_its_own_log_write():
    """Raft thesis §10.2.1: the followers store a write while the leader does;
    the leader still counts itself only once its own write is done."""
    net = Net()
    drivers = [make(net, str(i), MemoryKV()) for i in range(3)]
    lead = await settle_leader(drivers)
    events = []
    kv = lead.log.kv
    real_set, real_send = kv.set, lead.transport.send

    def set_(key, value):
        events.append(("store", key.rsplit(":", 2)[-2]))
        real_set(key, value)

    def send(peer, text):
        events.append(("send", text.split(",", 2)[1]))
        return real_send(peer, text)
    kv.set, lead.transport.send = set_, send
    assert await lead.propose(7) == 1
    first_store = events.index(("store", "log"))
    assert [e for e in events[:first_store] if e[0] == "send"] == [("send", '"a"')] * 2, events
    assert lead.stats["sent_before_persist"] >= 2
    # A term not in storage yet is never sent ahead of the write (it could be
    # reused after a crash): a Ready whose AppendEntries carry another term.
    lead._stored_term -= 1
    sent = []
    lead.transport.send = lambda peer, text: sent.append(text) or True

    class Rd:
        entries = [[1, None, 0, None]]
        messages = [["a", lead.node.id, "x", lead.node.term, 0, 0, [], 0]]
    assert lead.send_appends_early(Rd) == Rd.messages and sent == []
    for d in drivers:
        d.stop()


@in_own_loop
async def test_propose_many_writes_a_burst_in_order_with_one_wakeup():
    net = Net()
    drivers = [make(net, str(i), MemoryKV()) for i in range(3)]
    lead = await settle_leader(drivers)
    before = lead.stats["persist_batches"]
    assert await lead.propose_many([1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]
    assert lead.stats["persist_batches"] - before <= 2  # the burst is one record, not five
    assert lead.app_state.ops == [1, 2, 3, 4, 5]
    assert await lead.propose_many([]) == []
    # one command the app rejects fails alone; the others commit, in order
    with pytest.raises(ProposalError) as e:
        await lead.propose_many([6, "bad", 8])
    assert e.value.error == "command_failed"
    assert e.value.results[0] == 6 and e.value.results[2] == 7
    assert isinstance(e.value.results[1], ProposalError)
    await wait_for(lambda: all(d.app_state.ops == [1, 2, 3, 4, 5, 6, 8] for d in drivers))
    # a follower's burst is forwarded and applied exactly once
    follower = next(d for d in drivers if d is not lead)
    assert await follower.propose_many([9, 10]) == [8, 9]
    await wait_for(lambda: all(d.app_state.ops[-2:] == [9, 10] for d in drivers))
    for d in drivers:
        d.stop()


SLOW = dict(election_min_ms=2000, election_max_ms=3000, heartbeat_ms=50)


@in_own_loop
async def test_followers_campaign_at_once_when_the_leaders_channel_closes():
    net = Net()
    drivers = [make(net, str(i), MemoryKV(), timing=SLOW) for i in range(3)]
    for d in drivers:
        d.campaign_early()  # every voter is "up" in this network: no 2-3 s wait
    lead = await settle_leader(drivers)
    term = lead.node.term
    rest = [d for d in drivers if d is not lead]
    lead.stop()
    del net.drivers[lead.node.id]
    t0 = time.monotonic()
    for d in rest:
        d.on_peer(lead.node.id, False)
    await wait_for(lambda: len(leaders(net)) == 1, timeout=1.5)
    assert time.monotonic() - t0 < 1.0  # well inside the 2-3 s election timeout
    new = leaders(net)[0]
    assert new.node.term > term
    assert await new.propose(5) == 1
    for d in rest:
        d.stop()


@in_own_loop
async def test_a_closed_channel_to_a_live_leader_unsettles_nobody():
    net = Net()
    drivers = [make(net, str(i), MemoryKV(), timing=SLOW) for i in range(3)]
    for d in drivers:
        d.campaign_early()
    lead = await settle_leader(drivers)
    term = lead.node.term
    follower = next(d for d in drivers if d is not lead)
    net.cut.add(follower.node.id)  # its channels are gone; the others still talk
    follower.on_peer(lead.node.id, False)
    await asyncio.sleep(0.6)  # past its early campaign: a PreVote the others refuse
    assert lead.node.role == "leader" and lead.node.term == term
    assert all(d.node.term == term for d in drivers if d is not follower)
    net.cut.clear()
    await wait_for(lambda: follower.node.leader_id == lead.node.id, timeout=4)
    assert follower.node.term == term  # PreVote: its campaign moved no term
    for d in drivers:
        d.stop()


async def cut_off_page():
    """Three drivers; a follower ("page") with one write applied, then cut
    off until it knows no leader, its core's propose() recording every try.
    Its writes' tries come back retryable until net.cut is cleared."""
    net = Net()
    ds = [make(net, str(i), MemoryKV()) for i in range(3)]
    lead = await settle_leader(ds)
    page = next(d for d in ds if d is not lead)
    assert await page.propose(1) == 1
    net.cut.add(page.node.id)
    await wait_for(lambda: page.node.leader_id is None)
    tries, propose = [], page.node.propose
    page.node.propose = lambda *a: tries.append(a) or propose(*a)
    return net, ds, page, tries


async def expire_then_write_again(net, ds, page, pending):
    """The cluster forgets the page's session while `pending` (its write or
    burst) waits to retry: it ends session_expired, never applied, and the
    page's next write (a new client) applies once everywhere."""
    page.start_new_session()
    net.cut.clear()
    with pytest.raises(ProposalError) as e:
        await pending
    assert e.value.error == "session_expired"
    assert page.last_write["error"] == "session_expired"  # the status panel says so
    assert await page.propose(3) == 2
    await wait_for(lambda: all(d.app_state.ops == [1, 3] for d in ds))
    await asyncio.sleep(0.3)
    assert all(d.app_state.ops == [1, 3] for d in ds)
    for d in ds:
        d.stop()


@in_own_loop
async def test_a_burst_waiting_to_retry_when_its_session_expires_ends_unapplied():
    # propose_many retries with the session it began under: a retry after
    # the page became a new client would send old seqs under the new id.
    net, ds, page, tries = await cut_off_page()
    burst = asyncio.ensure_future(page.propose_many([7, 8]))
    # between two tries: proposed, answered (no_leader), not in flight now
    await wait_for(lambda: len(tries) >= 2 and not page._proposals)
    await expire_then_write_again(net, ds, page, burst)


@in_own_loop
async def test_a_write_waiting_to_retry_when_its_session_expires_ends_unapplied():
    # propose() (its own retry loop, the pipelined hot path) as propose_many
    # above: a retry never sends an old seq under the page's new client id.
    net, ds, page, tries = await cut_off_page()
    write = asyncio.ensure_future(page.propose(7))
    await wait_for(lambda: len(tries) >= 2 and not page._proposals)
    assert len(set(tries)) == 1  # every try: the same (client, seq, command)
    await expire_then_write_again(net, ds, page, write)


@in_own_loop
async def test_a_write_retried_while_no_leader_is_known_applies_once_when_one_is():
    net, ds, page, tries = await cut_off_page()
    write = asyncio.ensure_future(page.propose(5))
    await wait_for(lambda: len(tries) >= 2)
    net.cut.clear()
    assert await write == 2
    assert len(set(tries)) == 1 and page.last_write["committed"] and not page._proposals
    await wait_for(lambda: all(d.app_state.ops == [1, 5] for d in ds))
    for d in ds:
        d.stop()


@in_own_loop
async def test_the_entries_of_a_ready_are_encoded_once_and_every_message_is_its_own_text():
    # send() encodes a batch once for the followers that get the same
    # entries; one behind (other entries, even as many) gets its own.
    net = Net()
    drivers = [make(net, str(i), MemoryKV()) for i in range(3)]
    lead = await settle_leader(drivers)
    lead.stop()
    sent, dumps = [], []
    lead.transport.send = lambda peer, text: sent.append(text)
    compact = codec.compact
    codec.compact = lambda obj: dumps.append(obj) or compact(obj)
    try:
        batch = [[1, "c", 1, "x"], [1, "c", 2, "y"]]
        msgs = [codec.append_request("0", "1", 1, 0, 0, batch, 0),
                codec.append_request("0", "2", 1, 0, 0, list(batch), 0),      # the same entries
                codec.append_request("0", "3", 1, 2, 1, [[1, "c", 3, "z"], [1, "c", 4, "w"]], 1),
                codec.heartbeat("0", "1", 1, 0, 0)]
        lead.send(msgs)
    finally:
        codec.compact = compact
    assert sent == [codec.encode(m) for m in msgs]
    assert len(dumps) == 2  # the first batch once, the other once
    for d in drivers:
        d.stop()


class CountingKV(MemoryKV):
    def __init__(self):
        super().__init__()
        self.sets = 0
        self.full = False

    def set(self, key, value):
        if self.full:
            raise StorageFull("quota")
        self.sets += 1
        super().set(key, value)


@in_own_loop
async def test_lazy_commit_stores_the_commit_index_within_a_tick_and_saves_writes():
    # The browser's log (raft/browser/app.py: lazy_commit=True): a commit
    # that moves alone is stored by the ticker, not in the commit path.
    async def run(lazy):
        net = Net()
        kvs = {str(i): CountingKV() for i in range(3)}
        for nid, kv in kvs.items():
            make(net, nid, kv, lazy_commit=lazy)
        await wait_for(lambda: len(leaders(net)) == 1)
        lead = leaders(net)[0]
        await lead.propose(0)            # the first write after the election
        before = sum(kv.sets for kv in kvs.values())
        for i in range(20):
            await lead.propose(i)        # sequential: each commit moves alone
        sets = sum(kv.sets for kv in kvs.values()) - before
        await asyncio.sleep(0.1)         # a few ticks
        for nid, d in net.drivers.items():
            assert d.log.commit_due is None
            stored = RecordLog(kvs[nid], "t", nid).load().commit
            assert stored == d.node.commit_index, (nid, stored, d.node.commit_index)
        for d in net.drivers.values():
            d.running = False
        return sets, net, kvs
    eager, _, _ = await run(False)
    lazy, net, kvs = await run(True)
    # a leader and two followers: eager writes a record and a commit per node per write
    print("kv sets for 20 writes: eager %d, lazy %d" % (eager, lazy))
    assert lazy < eager, (lazy, eager)
    # a store that fills up under a due commit halts the node (as a persist does)
    d = leaders(net)[0]
    d.running = True
    d.log.commit_due = (d.node.term, d.node.vote, d.node.commit_index)
    kvs[d.node.id].full = True
    d.flush_commit()
    assert d.error is not None and "full" in d.error
