"""Client windows outside the cluster (raft/CLIENT.md): the client wire codec,
the client session (raft/client.py) and the member's ClientHub
(raft/browser/clients.py) wired to real browser Drivers over an in-memory
network: exactly-once across a leader change, linearizable reads, live
following, gap recovery, snapshots, bounds and malformed input."""
import asyncio
import json
import random
import time

import pytest

from raft import client as proto
from raft.runtime.client_hub import ClientHub, batch_messages, MAX_CLIENTS, MESSAGE_BUDGET
from raft.runtime.driver import Driver, open_log
from raft.runtime.contract import GuardedState, new_client_id
from raft.client import ClientSession, ClientDecodeError, decode, encode, is_client_id
from raft.config import Config
from raft.node import Node
from raft.records import MemoryKV


# ------------------------------------------------------------------ codec
def test_client_ids_are_told_apart_from_member_ids():
    assert is_client_id("c0a1b2c3d")
    for bad in ("0", "12", "c", "c12", "x0a1b2c3", "c0a1-b2c3", "c" + "a" * 32, None, 5):
        assert not is_client_id(bad), bad


def test_every_message_type_round_trips():
    msgs = [["sub", 1], ["p", 1, ["put", "k", 1]], ["r", 7], ["sid", 2],
            ["st", "0", 1, 5], ["st", None, 0, 0],
            ["e", 3, [[1, "c0001", 1, 1], [1, None, 0, None], [2, "0-ab", 9, {"a": [1]}]]],
            ["e", 4, []], ["e", 7, [[3, None, 0, {"voters": ["0"], "learners": [], "by": ["x", 1]}]]],
            ["s", 9, 0, 1, "{}"], ["pr", 2, None, 3], ["pr", 2, "no_leader", "1"],
            ["rr", 7, None, 12], ["x", "busy"]]
    for m in msgs:
        allowed = proto.TO_MEMBER if m[0] in proto.TO_MEMBER else proto.TO_CLIENT
        assert decode(encode(m), allowed) == m


@pytest.mark.parametrize("text", [
    "", "nope", "[]", "{}", '["wc"]', '["wc",2,"sub",1]', '["wc","1","sub",1]',
    '[1,"h","0","1",3,0,0]',                   # a Raft message is not a client message
    '["wc",1,"zz",1]', '["wc",1,"sub"]', '["wc",1,"sub",-1]', '["wc",1,"sub",1.5]',
    '["wc",1,"sub",true]', '["wc",1,"p",0,1]', '["wc",1,"p",1]', '["wc",1,"r","x"]',
    '["wc",1,"sid",0]', '["wc",1,"sid","1"]', '["wc",1,"sid"]',
    '["wc",1,"sub",1,2]', '["wc",1,"e",1,[]]',  # member-bound messages only
])
def test_malformed_member_bound_messages_are_refused(text):
    with pytest.raises(ClientDecodeError):
        decode(text, proto.TO_MEMBER)


def item(index, command, client="c0001", seq=None, term=1):
    return [index, term, client, seq or index, command]


def E(first, last, items):
    """The "e" message for first..last holding these items (no-ops elsewhere)."""
    at = dict((it[0], it[1:]) for it in items)
    return ["e", first, [at.get(i, [1, None, 0, None]) for i in range(first, last + 1)]]


@pytest.mark.parametrize("msg", [
    ["e", 0, []], ["e", -1, []], ["e", 3, 5, []], ["e", 3, [[1, "c1", 1]]],
    ["e", 3, [[1, "", 1, 1]]], ["e", 3, [[1, "c1", 0, 1]]], ["e", 3, [[1, "c1", -1, 1]]],
    ["e", 3, [[-1, "c1", 1, 1]]], ["e", 3, [[1, 5, 1, 1]]], ["e", 3, [4, 1]], ["e", 3, "x"],
    ["s", 0, 0, 1, ""],
    ["s", 1, 0, 2, ""], ["s", 1, 0, 1, 5], ["pr", 1, "weird", None], ["pr", 0, None, 1],
    ["rr", 1, "weird", 0], ["rr", 1, None, -1], ["st", 5, 1, 0], ["st", "0", 2, 0],
    ["x", 1], ["sub", 1],
])
def test_malformed_client_bound_messages_are_refused(msg):
    with pytest.raises(ClientDecodeError):
        decode(json.dumps(["wc", 1] + msg), proto.TO_CLIENT)


def test_snapshot_chunks_fit_and_reassemble():
    text = json.dumps({"k": "é\"\\" * 40000, "n": list(range(3000))})
    chunks = proto.snapshot_chunks(9, text)
    assert len(chunks) > 2
    pieces = []
    for i, c in enumerate(chunks):
        assert len(c.encode()) <= proto.CHUNK_BUDGET
        m = decode(c, proto.TO_CLIENT)
        assert m[1] == 9 and m[2] == len("".join(pieces)) and m[3] == (1 if i == len(chunks) - 1 else 0)
        pieces.append(m[4])
    assert "".join(pieces) == text
    assert [decode(c, proto.TO_CLIENT)[3] for c in proto.snapshot_chunks(1, "5")] == [1]


def test_batch_messages_split_big_batches_and_keep_every_index():
    entries = [[1, None, 0, None]] + [[1, "c1234", i, "x" * 5000] for i in range(1, 40)]
    texts = batch_messages(10, entries)
    assert len(texts) > 1
    nxt, seen = 10, []
    for t in texts:
        assert len(t.encode()) <= MESSAGE_BUDGET
        _, first, part = decode(t, proto.TO_CLIENT)
        assert first == nxt
        nxt = first + len(part)
        seen += part
    assert nxt == 10 + len(entries) and seen == entries


# ------------------------------------------------------------------ session alone
class Tally:
    def __init__(self):
        self.ops = []

    def apply(self, c):
        self.ops.append(c)
        return len(self.ops)

    def snapshot(self):
        return list(self.ops)

    def restore(self, data):
        self.ops = list(data)


def msgs(session):
    return [decode(t, proto.TO_MEMBER) for t in session.take_outbox()]


def to_client(session, msg, now=0):
    session.receive(encode(msg), now)


def test_session_subscribes_then_resends_pending_once_in_step():
    s = ClientSession("cabcd1", Tally())
    assert s.propose(["a"]) == 1 and s.take_outbox() == []   # not attached: kept pending
    s.connected("1", 10)
    assert msgs(s) == [["sub", 1]]                            # first catch up ...
    to_client(s, E(1, 0, []), 11)                         # ... in step: now send
    assert msgs(s) == [["p", 1, ["a"]]]
    s.disconnected(20)
    s.connected("2", 30)
    assert msgs(s) == [["sub", 1]]
    s.tick(30 + ClientSession.RESYNC_MS)                      # no answer: send anyway
    assert msgs(s) == [["p", 1, ["a"]], ["sub", 1]]           # the SAME seq on another member


def test_session_answers_its_own_writes_from_the_stream_without_resending():
    t = Tally()
    s = ClientSession("cabcd1", t)
    s.connected("1", 0)
    to_client(s, E(1, 0, []))
    a, b = s.propose("a"), s.propose("b")
    s.take_outbox()
    s.disconnected(5)                                         # member gone, answers lost
    s.connected("2", 6)
    assert msgs(s) == [["sub", 1]]
    # Both committed meanwhile (b twice: a retry elsewhere): answered from our
    # own apply, executed once, and neither is sent again.
    to_client(s, E(1, 3, [item(1, "a", "cabcd1", a), item(2, "b", "cabcd1", b),
                          item(3, "b", "cabcd1", b)]), 7)
    assert s.take_done() == [["p", a, None, 1], ["p", b, None, 2]] and not s.pending
    assert msgs(s) == [] and t.ops == ["a", "b"]
    to_client(s, ["pr", a, None, 1], 8)                       # the member's late answer
    assert s.take_done() == [] and s.stats["late_results"] == 1


def test_after_session_expired_the_session_goes_on_as_a_new_one():
    t = Tally()
    s = ClientSession("cabcd1", t)
    s.connected("1", 0)
    to_client(s, E(1, 0, []))
    a, b = s.propose("a"), s.propose("b")
    msgs(s)
    to_client(s, ["pr", a, "session_expired", None])
    # b was sent under the forgotten session too: it ends the same way
    assert s.take_done() == [["p", a, "session_expired", None], ["p", b, "session_expired", None]]
    assert s.session_id == "cabcd1.1" and not s.pending and s.stats["new_sessions"] == 1
    assert msgs(s) == [["sid", 1]]
    assert s.propose("c") == 1 and msgs(s) == [["p", 1, "c"]]   # a new client's first write
    to_client(s, ["pr", 1, "session_expired", None])     # sent before the member switched
    assert s.take_done() == [] and s.stats["late_results"] == 1 and s.session == 1
    to_client(s, ["sid", 1])                                  # the member confirms
    to_client(s, E(1, 1, [item(1, "c", "cabcd1.1", 1)]))      # answered by our own apply
    assert s.take_done() == [["p", 1, None, 1]] and t.ops == ["c"]
    # on another member it says so again before any write
    s.propose("d")
    s.disconnected(5)
    s.connected("2", 6)
    assert msgs(s) == [["sub", 2], ["sid", 1]]
    to_client(s, ["sid", 1], 7)
    to_client(s, ["pr", 2, None, 9], 8)
    assert s.take_done() == [["p", 2, None, 9]]


def test_session_answers_writes_a_snapshot_covers_from_its_session_table():
    from raft.sessions import Sessions
    s = ClientSession("cabcd1", Tally())
    s.connected("1", 0)
    to_client(s, E(1, 0, []))
    a, b, c = s.propose("a"), s.propose("b"), s.propose("c")
    d = s.propose("d")                                        # not in the snapshot
    table = Sessions(1)                                       # keeps the newest result only
    for seq, cmd in ((a, "a"), (b, "b"), (c, "c")):
        table.apply("cabcd1", seq, cmd, Tally())
    for chunk in proto.snapshot_chunks(9, json.dumps({"sm": ["a", "b", "c"],
                                                      "sessions": table.snapshot(), "window": 1})):
        s.receive(chunk, 1)
    assert s.take_done() == [["p", a, "session_expired", None],   # forgotten: final error
                             ["p", b, "session_expired", None],
                             ["p", c, None, 1]]                    # result kept by the table
    assert list(s.pending) == [d]


def test_session_retries_retryable_errors_with_the_same_seq_then_gets_the_result():
    s = ClientSession("cabcd1", Tally())
    s.connected("1", 0)
    s.take_outbox()
    seq = s.propose(5)
    s.take_outbox()
    to_client(s, ["pr", seq, "leadership_lost", None], 100)
    s.tick(120)
    assert msgs(s) == []                                      # backing off
    s.tick(400)
    assert msgs(s) == [["p", seq, 5]]
    to_client(s, ["pr", seq, None, 42], 500)
    assert s.take_done() == [["p", seq, None, 42]] and not s.pending
    to_client(s, ["pr", seq, None, 42], 600)                  # duplicate answer: ignored
    assert s.take_done() == [] and s.stats["late_results"] == 1


def test_session_final_errors_and_give_up():
    s = ClientSession("cabcd1", Tally())
    s.connected("1", 0)
    a, b = s.propose(1), s.propose(2)
    to_client(s, ["pr", a, "invalid", "bad"], 10)
    assert s.take_done() == [["p", a, "invalid", "bad"]]
    to_client(s, ["pr", b, "no_leader", None], 20)
    s.tick(ClientSession.GIVE_UP_MS + 1)
    assert s.take_done() == [["p", b, "no_leader", None]]


def test_session_applies_stream_in_order_and_resubscribes_on_a_gap():
    t = Tally()
    seen = []
    s = ClientSession("cabcd1", t, on_applied=lambda f, es: seen.append([f, es]))
    s.connected("1", 0)
    s.take_outbox()
    to_client(s, E(1, 3, [item(2, "a"), item(3, "b")]))     # 1 was a no-op
    to_client(s, E(2, 5, [item(3, "b"), item(4, "c")]))     # overlap: only 4 is new
    assert t.ops == ["a", "b", "c"] and s.applied_index == 5
    noop = [1, None, 0, None]
    assert seen == [[1, [noop, [1, "c0001", 2, "a"], [1, "c0001", 3, "b"]]],
                    [4, [[1, "c0001", 4, "c"], noop]]]
    to_client(s, E(7, 7, [item(7, "z")]))                     # 6 missing: a gap
    assert msgs(s) == [["sub", 6]] and t.ops == ["a", "b", "c"] and s.stats["gaps"] == 1
    to_client(s, E(8, 8, [item(8, "y")]))                     # still behind: no second sub
    assert msgs(s) == []
    to_client(s, E(6, 8, [item(6, "d"), item(7, "z"), item(8, "y")]))
    assert t.ops == ["a", "b", "c", "d", "z", "y"] and s.applied_index == 8
    s.tick(10 * ClientSession.RESYNC_MS)
    assert msgs(s) == []                                      # in step: nothing to repeat


def test_session_applies_a_retried_command_once_like_every_replica():
    t = Tally()
    s = ClientSession("cabcd1", t)
    s.connected("1", 0)
    # A retry landed twice in the log (same client and seq): applied once.
    to_client(s, E(1, 3, [item(1, "a", "cx001", 1), item(2, "b", "cx001", 2),
                          item(3, "b", "cx001", 2)]))
    assert t.ops == ["a", "b"] and s.applied_index == 3


def test_session_reassembles_a_snapshot_and_restarts_on_a_broken_one():
    t = Tally()
    s = ClientSession("cabcd1", t)
    s.connected("1", 0)
    s.take_outbox()
    from raft.sessions import Sessions
    table = Sessions(8)
    table.apply("cx001", 1, "q", Tally())
    data = {"sm": ["x"] * 30000, "sessions": table.snapshot(), "window": 8}
    chunks = proto.snapshot_chunks(50, json.dumps(data))
    assert len(chunks) > 1
    s.receive(chunks[0], 1)
    s.receive(chunks[2] if len(chunks) > 2 else chunks[1].replace('",0,', '",7,'), 2)
    assert s.applied_index == 0 and msgs(s) == [["sub", 1]]   # out of order: start over
    for c in chunks:
        s.receive(c, 3)
    assert s.applied_index == 50 and len(t.ops) == 30000 and s.stats["snapshots"] == 1
    to_client(s, E(51, 52, [item(51, "n"), item(52, "q", "cx001", 1)]))
    assert t.ops[-1] == "n" and len(t.ops) == 30001   # the session table came along
    assert s.sessions.window == 8
    # A snapshot that does not restore is counted and asked for again.
    for c in proto.snapshot_chunks(60, json.dumps({"sm": 1})):
        s.receive(c, 4)
    assert s.stats["bad_snapshots"] == 1 and s.applied_index == 52
    assert msgs(s)[-1] == ["sub", 53]


def test_session_read_waits_for_its_own_stream_to_reach_the_read_index():
    s = ClientSession("cabcd1", Tally())
    s.connected("1", 0)
    s.take_outbox()
    ctx = s.read()
    assert msgs(s) == [["r", ctx]]
    to_client(s, ["rr", ctx, None, 3])
    assert s.take_done() == []
    to_client(s, E(1, 3, [item(3, "a")]))
    assert s.take_done() == [["r", ctx, None]]
    ctx2 = s.read()
    to_client(s, ["rr", ctx2, "no_leader", 0], 10)
    s.tick(1000)
    assert msgs(s) == [["r", ctx2], ["r", ctx2]]


def test_session_read_whose_index_the_stream_never_reaches_still_ends():
    s = ClientSession("cabcd1", Tally())
    s.connected("1", 0)
    s.take_outbox()
    ctx = s.read()
    to_client(s, ["rr", ctx, None, 7])          # granted, but index 7 never streams in
    s.tick(s.GIVE_UP_MS - 1)
    assert s.take_done() == []
    s.tick(s.GIVE_UP_MS)
    assert s.take_done() == [["r", ctx, "timeout"]] and s.reads == {}


def test_session_counts_garbage_and_keeps_going():
    s = ClientSession("cabcd1", Tally())
    s.connected("1", 0)
    for junk in ("", "[", '["wc",1,"sub",1]', '[1,"h","0","1",3,0,0]', "x" * 70000):
        s.receive(junk, 1)
    assert s.stats["dropped_malformed"] == 5
    with pytest.raises(ValueError):
        ClientSession("0", Tally())


# ------------------------------------------------------------------ members + clients, end to end
FAST = dict(election_min_ms=150, election_max_ms=300, heartbeat_ms=20)


def clock():
    return int(time.monotonic() * 1000)


class Net:
    """Delivers each message on a later loop turn, in order per link."""

    def __init__(self):
        self.ends = {}      # id -> on_message(src, text)
        self.cut = set()
        self.backlog = {}

    def send(self, src, dst, text):
        if dst not in self.ends or src in self.cut or dst in self.cut:
            return False
        asyncio.get_event_loop().call_soon(self._deliver, src, dst, text)
        return True

    def _deliver(self, src, dst, text):
        end = self.ends.get(dst)
        if end is not None and src not in self.cut and dst not in self.cut:
            end(src, text)


class FakeTransport:
    def __init__(self, net, me):
        self.net, self.me, self.stats = net, me, {}

    def send(self, peer, text):
        return self.net.send(self.me, peer, text)

    def peers_up(self):
        return sorted(p for p in self.net.ends if p != self.me and not is_client_id(p))


class Counter:
    def __init__(self):
        self.ops = []

    def apply(self, command):
        if not isinstance(command, int):
            raise TypeError("need an int")
        self.ops.append(command)
        return sum(self.ops)

    def snapshot(self):
        return list(self.ops)

    def restore(self, data):
        self.ops = list(data)


def make_member(net, nid, size=3, **cfg):
    log, restored = open_log(MemoryKV(), "t", nid)
    state = Counter()
    node = Node(nid, [str(i) for i in range(size)], config=Config(**dict(FAST, **cfg)),
                rng=random.Random(nid).random, state_machine=GuardedState(state), now_ms=clock())
    t = FakeTransport(net, nid)
    d = Driver(node, log, t, clock, restored=restored)
    d.app_state = state
    d.clients = ClientHub(node, t.send, backlog=lambda peer: net.backlog.get((nid, peer), 0))
    net.ends[nid] = d.on_message
    d.start("%s-%08x" % (nid, random.getrandbits(32)))
    return d


class Client:
    """A client runtime in miniature: a ClientSession on the in-memory net."""

    def __init__(self, net, cid, member):
        self.net, self.id = net, cid
        self.state = Counter()
        self.session = ClientSession(cid, GuardedState(self.state), now_ms=clock())
        self.results = {}
        self.reads_done = set()
        net.ends[cid] = self.on_message
        self.attach(member)

    def attach(self, member):
        self.member = member
        self.session.connected(member, clock())
        self.flush()

    def on_message(self, src, text):
        if src != self.member:
            return
        self.session.receive(text, clock())
        self.flush()

    def flush(self):
        for text in self.session.take_outbox():
            self.net.send(self.id, self.member, text)
        for d in self.session.take_done():
            if d[0] == "p":
                self.results[d[1]] = (d[2], d[3])
            else:
                self.reads_done.add((d[1], d[2]))

    def tick(self):
        self.session.tick(clock())
        self.flush()


async def wait_for(pred, timeout=8.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def leader(drivers):
    ls = [d for d in drivers if d.node.role == "leader" and d.running]
    return ls[0] if len(ls) == 1 else None


async def ticking(clients):
    while True:
        for c in clients:
            c.tick()
        await asyncio.sleep(0.02)


async def cluster(net, n=3, **cfg):
    ds = [make_member(net, str(i), n, **cfg) for i in range(n)]
    await wait_for(lambda: leader(ds) is not None and all(d.node.leader_id for d in ds),
                   what="a leader")
    return ds


async def test_client_writes_apply_exactly_once_across_a_leader_change():
    net = Net()
    ds = await cluster(net)
    lead = leader(ds)
    c = Client(net, "cfeed01", lead.node.id)   # attached to the leader, which will go
    ticker = asyncio.ensure_future(ticking([c]))
    try:
        for v in range(1, 6):
            c.session.propose(v)
        c.flush()
        await wait_for(lambda: len(c.results) == 5, what="first writes")
        # In step: the member did not send those results, the stream did.
        assert lead.clients.stats["answered_by_stream"] == 5
        assert c.session.stats["late_results"] == 0
        for v in range(6, 16):
            c.session.propose(v)
        c.flush()
        # The leader dies with writes in flight; the client moves to a survivor.
        lead.stop()
        net.cut.add(lead.node.id)
        rest = [d for d in ds if d is not lead]
        c.session.disconnected(clock())
        c.attach(rest[0].node.id)
        for v in range(16, 21):
            c.session.propose(v)
        c.flush()
        await wait_for(lambda: len(c.results) == 20, timeout=15, what="every write answered")
        assert all(err is None for err, _ in c.results.values()), c.results
        await wait_for(lambda: all(len(d.app_state.ops) >= 20 for d in rest), what="applied")
        for d in rest:
            assert sorted(d.app_state.ops) == list(range(1, 21))   # each exactly once
        assert rest[0].app_state.ops == rest[1].app_state.ops
        await wait_for(lambda: c.state.ops == rest[0].app_state.ops, what="client follows")
        # Each result is the running sum at that write's place in the log.
        order = rest[0].app_state.ops
        for seq, (_, value) in c.results.items():
            assert value == sum(order[:order.index(seq) + 1])
    finally:
        ticker.cancel()
        for d in ds:
            d.stop()


async def test_client_reads_are_linearizable_and_it_follows_changes_live():
    net = Net()
    ds = await cluster(net)
    follower = [d for d in ds if d.node.role != "leader"][0]
    c = Client(net, "cfeed02", follower.node.id)
    ticker = asyncio.ensure_future(ticking([c]))
    try:
        other = [d for d in ds if d is not follower][0]
        await other.propose(7)
        ctx = c.session.read()
        c.flush()
        await wait_for(lambda: (ctx, None) in c.reads_done, what="read")
        assert c.state.ops == [7]                  # the write before the read is visible
        for v in (1, 2, 3):
            await other.propose(v)
        await wait_for(lambda: c.state.ops == [7, 1, 2, 3], what="live updates, no request")
        assert c.session.writable and c.session.member_status[0] == leader(ds).node.id
    finally:
        ticker.cancel()
        for d in ds:
            d.stop()


def test_a_new_client_gets_the_session_limits_even_from_a_member_that_applied_nothing():
    sent = []
    node = Node("0", ["0"], config=Config(**dict(FAST, max_sessions=2, session_window=9)),
                rng=random.Random(1).random, state_machine=GuardedState(Counter()))
    hub = ClientHub(node, lambda peer, text: sent.append(decode(text, proto.TO_CLIENT)) or True)
    hub.on_message("cabcd1", encode(["sub", 1]))             # before anything is applied
    assert [m[0] for m in sent] == ["st", "e"]
    node.tick(node.election_deadline)
    while node.has_ready():
        rd = node.ready()
        node.advance(rd)
        if rd.committed:
            hub.on_applied(rd.committed_from, rd.committed)
    assert node.applied_index >= 1
    snap = [m for m in sent[2:] if m[0] == "s"]                # not the entries from 1
    assert snap and not [m for m in sent[2:] if m[0] == "e"]
    data = json.loads("".join(m[4] for m in snap))
    assert data["window"] == 9 and data["sessions"]["max_clients"] == 2


def test_a_clients_sessions_are_its_own_and_only_go_forward():
    proposed, sent = [], []

    class Node1:
        applied_index = 0
        leader_id, has_quorum, voters = "0", True, ["0"]

        def propose(self, client, seq, command):
            proposed.append(client)
    hub = ClientHub(Node1(), lambda peer, text: sent.append(decode(text, proto.TO_CLIENT)) or True)
    for msg in (["sid", 2], ["p", 1, "x"], ["sid", 1], ["p", 2, "y"], ["sid", 2]):
        hub.on_message("cabcd1", encode(msg))
    assert proposed == ["cabcd1.2", "cabcd1.2"]               # never another window's id
    assert [m for m in sent if m[0] == "sid"] == [["sid", 2], ["sid", 2]]  # not the older one
    hub.on_result("cabcd1", 1, "session_expired", None)       # the old session's: not sent
    hub.on_result("cabcd1.2", 2, None, 7)
    assert [m for m in sent if m[0] == "pr"] == [["pr", 2, None, 7]]


async def test_a_client_whose_session_expired_writes_on_as_a_new_session():
    net = Net()
    ds = await cluster(net, max_sessions=2)
    lead = leader(ds)
    via = next(d for d in ds if d is not lead)
    c = Client(net, "cfeed05", via.node.id)
    ticker = asyncio.ensure_future(ticking([c]))
    try:
        await wait_for(lambda: c.session.writable, what="attached")
        c.session.propose(1)
        c.flush()
        await wait_for(lambda: c.results == {1: (None, 1)}, what="first write")
        for k, other in enumerate(("cother1", "cother2")):   # the table keeps 2 clients
            lead.node.propose(other, 1, 10 + k)
            lead._kick()
        await wait_for(lambda: c.state.ops == [1, 10, 11], what="others' writes")
        c.results.clear()
        c.session.propose(2)                                  # seq 2 of a forgotten session
        c.flush()
        await wait_for(lambda: c.results, what="refusal")
        assert c.results == {2: ("session_expired", None)}
        assert c.session.session_id == "cfeed05.1"
        c.results.clear()
        assert c.session.propose(3) == 1                      # a new client's first write
        c.flush()
        await wait_for(lambda: c.results, what="write in the new session")
        assert c.results == {1: (None, 25)}                   # 1 + 10 + 11 + 3
        await wait_for(lambda: all(d.app_state.ops == [1, 10, 11, 3] for d in ds),
                       what="applied once everywhere")
        assert [e[1] for e in lead.node.entries(lead.node.last_index(), lead.node.last_index())] \
            == ["cfeed05.1"]                                  # proposed under its new session id
    finally:
        ticker.cancel()
        for d in ds:
            d.stop()


async def test_a_late_client_gets_a_snapshot_then_the_stream():
    net = Net()
    ds = await cluster(net, snapshot_entries=20)
    lead = leader(ds)
    for v in range(1, 60):
        await lead.propose(v)
    await wait_for(lambda: all(d.node.first_index() > 1 for d in ds), what="compaction")
    c = Client(net, "cfeed03", ds[1].node.id)
    ticker = asyncio.ensure_future(ticking([c]))
    try:
        await wait_for(lambda: c.state.ops == list(range(1, 60)), what="snapshot")
        assert c.session.stats["snapshots"] == 1
        await lead.propose(99)
        await wait_for(lambda: c.state.ops[-1] == 99, what="stream after snapshot")
    finally:
        ticker.cancel()
        for d in ds:
            d.stop()


async def test_a_lagging_client_is_held_back_then_caught_up_from_the_log():
    net = Net()
    ds = await cluster(net)
    m = ds[0]
    c = Client(net, "cfeed04", m.node.id)
    ticker = asyncio.ensure_future(ticking([c]))
    try:
        await wait_for(lambda: c.session.writable, what="attached")
        net.backlog[(m.node.id, c.id)] = 10 << 20       # its channel is full
        lead = leader(ds)
        for v in range(1, 11):
            await lead.propose(v)
        await wait_for(lambda: len(m.app_state.ops) == 10, what="member applied")
        assert c.state.ops == [] and m.clients.stats["held_back"] >= 1
        # The voters were not slowed: every write above committed meanwhile.
        del net.backlog[(m.node.id, c.id)]              # drained
        await wait_for(lambda: c.state.ops == list(range(1, 11)), what="caught up")
    finally:
        ticker.cancel()
        for d in ds:
            d.stop()


async def test_member_drops_garbage_from_clients_and_bounds_them():
    net = Net()
    ds = await cluster(net)
    m = ds[0]
    hub = m.clients
    for junk in ("", "[1", '[1,"h","9","0",1,0,0]', '["wc",1,"e",1,[]]', '["wc",1,"p",0,1]'):
        m.on_message("cbad0001", junk)
    assert hub.stats["dropped_malformed"] == 5
    assert m.node.stats.get("dropped_malformed", 0) == 0     # never reached Raft
    assert m.error is None and m.running
    # A Raft message on a client channel is garbage too, and cannot pose as a member.
    term = m.node.term
    m.on_message("cbad0001", json.dumps([1, "v", "cbad0001", m.node.id, term + 5, 999, term + 4]))
    assert m.node.term == term and hub.stats["dropped_malformed"] == 6
    # Too many in flight: told so, at once.
    got = []
    net.ends["cbad0002"] = lambda src, text: got.append(decode(text, proto.TO_CLIENT))
    from raft.runtime import client_hub as hubmod
    m.node.leader_id, saved = None, m.node.leader_id   # no leader: proposals stay out
    for seq in range(1, hubmod.MAX_PENDING + 3):
        hub.handle_proposal(hub.subs.setdefault("cbad0002", hubmod._Sub("cbad0002")), seq, 1)
    await asyncio.sleep(0.05)
    assert hub.stats["too_many_pending"] >= 2
    assert any(g[0] == "pr" and g[2] == "too_many_pending" for g in got)
    m.node.leader_id = saved
    # Beyond MAX_CLIENTS a new client is told "busy".
    for k in range(MAX_CLIENTS):
        hub.subs.setdefault("cfill%04d" % k, hubmod._Sub("cfill%04d" % k))
    net.ends["cbusy001"] = lambda src, text: got.append(decode(text, proto.TO_CLIENT))
    m.on_message("cbusy001", encode(["sub", 1]))
    await asyncio.sleep(0.05)
    assert ["x", "busy"] in got and hub.stats["refused_busy"] == 1
    for d in ds:
        d.stop()


# ------------------------------------------------------------------ the page runtime's pure parts
from raft.runtime import client_driver as client_runtime  # noqa: E402


def test_member_choice_prefers_via_then_any_other_than_the_failed_one():
    choose = client_runtime.choose_member
    assert choose(["0", "1", "2"], "2", None, 0.0) == "2"
    assert choose(["0", "1", "2"], "2", "2", 0.0) in ("0", "1")     # via just failed us
    assert choose(["0", "1"], None, "0", 0.99) == "1"
    assert choose(["0"], None, "0", 0.5) == "0"                     # the only one left
    assert choose([], "1", None, 0.5) is None
    assert {choose(["0", "1", "2"], None, None, r / 10) for r in range(10)} == {"0", "1", "2"}
    ids = {new_client_id(random.random) for _ in range(50)}
    assert len(ids) == 50 and all(is_client_id(i) for i in ids)


class FakeClientTransport:
    def __init__(self):
        self.introducer_up = True
        self.sent, self.closed, self.refreshed = [], [], 0

    def send(self, peer, text):
        self.sent.append((peer, text))
        return True

    def close_peer(self, peer):
        self.closed.append(peer)

    def refresh(self):
        self.refreshed += 1


def client_driver(via=None):
    now = [0]
    s = ClientSession("cabcd1", GuardedState(Tally()))
    d = client_runtime.ClientDriver(s, lambda: now[0], lambda: 0.0, via=via)
    d.transport = FakeClientTransport()
    return d, now


def test_client_driver_attaches_and_moves_when_its_member_leaves():
    d, now = client_driver(via="1")
    d.on_presence(["0", "1", "cffff1", "2"])
    assert d.member == "1" and d.wants("1") and not d.wants("0") and not d.wants("cffff1")
    d.on_peer("1", True)
    assert d.session.member == "1"
    assert [decode(t, proto.TO_MEMBER) for _, t in d.transport.sent] == [["sub", 1]]
    d.on_message("2", encode(E(1, 1, [])))                   # not our member: dropped
    assert d.stats["dropped_not_member"] == 1
    # Node 1's page closes: it leaves the presence; its channel still looks open.
    d.on_presence(["0", "2"])
    assert d.member == "1"                                       # not at once ...
    now[0] = client_runtime.ABSENT_SWITCH_MS + 1
    d._check_member(now[0])
    assert d.member in ("0", "2") and d.session.member is None   # ... but soon
    assert d.transport.closed == ["1"] and d.transport.refreshed == 2  # chosen, then moved


def test_client_driver_tries_another_member_when_the_channel_does_not_come():
    d, now = client_driver()
    d.on_presence(["0", "1"])
    first = d.member
    now[0] = client_runtime.SWITCH_AFTER_MS + 1
    d._check_member(now[0])
    assert d.member != first and d.stats["switches"] == 2
    d.on_peer(d.member, True)
    d.on_message(d.member, encode(["x", "busy"]))                 # refused: move on
    d._check_member(now[0])
    assert d.member == first and d.stats["switches"] == 3


async def test_client_driver_propose_and_read_resolve_from_the_session():
    d, now = client_driver()
    d.on_presence(["0"])
    d.on_peer("0", True)
    d.on_message("0", encode(["st", "0", 1, 3]))
    assert d.status()["quorum"] and d.status()["client_of"] == "0"
    task = asyncio.ensure_future(d.propose(5))
    await asyncio.sleep(0)
    d.on_message("0", encode(["pr", 1, None, 5]))
    assert await task == 5
    assert d.status()["last_write"] == {"committed": True, "error": None, "on": 2, "exact": False}
    task = asyncio.ensure_future(d.propose("boom"))
    await asyncio.sleep(0)
    d.on_message("0", encode(["pr", 2, None, {"wraft_command_failed": "TypeError"}]))
    with pytest.raises(Exception) as e:
        await task
    assert e.value.error == "command_failed"
    read = asyncio.ensure_future(d.read())
    await asyncio.sleep(0)
    d.on_message("0", encode(["rr", 1, None, 2]))
    await asyncio.sleep(0)
    assert not read.done()                                       # our stream is not there yet
    d.on_message("0", encode(E(1, 2, [item(2, 7)])))
    await asyncio.wait_for(read, 1)
    with pytest.raises(Exception) as e:
        await d.propose("x" * 70000)
    assert e.value.error == "too_large"


def test_client_driver_leaves_a_member_that_knows_no_leader():
    d, now = client_driver(via="0")
    d.on_presence(["0", "1"])
    d.on_peer("0", True)
    d.on_message("0", encode(["st", None, 0, 3]))               # e.g. cut off from the cluster
    d._check_member(now[0])
    assert d.member == "0"
    now[0] = client_runtime.NO_QUORUM_SWITCH_MS + 1
    d._check_member(now[0])
    assert d.member == "1" and d.session.member is None
