"""Regression tests for core bugs found from outside (issue 10), one per bug,
each written as a reproduction that failed before its fix. Plain functions
(no pytest): they also run under MicroPython and Pyodide (tests/mpy)."""
import json

from raft import Node
from raft.kv import KVStateMachine
from raft.rng import Rng, seed_from_text
from raft.sessions import Sessions
from helpers import config, drain, elect, of_type, Net, Store

ABC = ["a", "b", "c"]


def mk(nid, voters=None, storage=None, **kw):
    return Node(nid, voters or ABC, config(**kw), Rng(seed_from_text(nid)).random, None, storage, 0)


def snapshot_at(index, pairs=(), voters=ABC):
    return {"sm": [list(p) for p in pairs], "sessions": [], "index": index,
            "config": {"voters": list(voters), "learners": []}}


def deliver(nodes, msgs, now, drop=None, limit=500, reads=None):
    """Deliver msgs (and what they cause) among `nodes` until quiet or
    `limit` deliveries; drop(m) -> True loses m; reads released go to
    `reads` as [node id, read]. Returns the count."""
    queue = list(msgs)
    n = 0
    while queue and n < limit:
        m = queue.pop(0)
        node = nodes.get(m[2])
        if node is None or (drop is not None and drop(m)):
            continue
        n += 1
        node.tick(now)
        node.step(m)
        out, _, done = drain(node)
        queue.extend(out)
        if reads is not None:
            reads.extend([m[2], r] for r in done)
    return n


def run(nodes, start, end, step=10, drop=None):
    """Tick every node from start to end (ms), delivering what they send."""
    now = start
    while now < end:
        now += step
        out = []
        for nid in sorted(nodes):
            nodes[nid].tick(now)
            out.extend(drain(nodes[nid])[0])
        deliver(nodes, out, now, drop)
    return now


# ------------------------------------------------------------------ bug 1
def test_follower_whose_stale_tail_covers_the_snapshot_index_gets_the_snapshot():
    # The leader compacted to index 3 (term 2); the follower, a stale leader
    # of term 1, has an uncommitted tail 2..5 of term 1 covering index 3.
    a = mk("a", storage=([2, None, 3], [], [3, 2, snapshot_at(3, [["k", "v"]])]))
    b = mk("b", storage=([1, None, 1], [[1, "x", i, ["put", "x", i]] for i in range(1, 6)]))
    msgs = elect(a)
    n = deliver({"a": a, "b": b}, msgs, 1000)
    # Before the fix: the leader re-probed index 3 forever (append, reject, append...).
    assert n < 50, n
    assert b.stats.get("snapshots_installed") == 1, b.stats
    assert b.offset == 3 and b.commit_index >= 3 and b.state_machine.data == {"k": "v"}
    assert b.log[1:] == a.log[1:]


# ------------------------------------------------------------------ bug 2
def test_snapshot_transfer_survives_a_follower_restart_and_a_stale_ack():
    pairs = [["k%03d" % i, "v" * 20] for i in range(100)]      # ~3,000 chars: ~8 chunks
    a = mk("a", storage=([2, None, 3], [], [3, 2, snapshot_at(3, pairs)]), max_bytes_per_msg=1000)
    b = mk("b", max_bytes_per_msg=1000)
    store = Store()
    nodes = {"a": a, "b": b}
    msgs = elect(a)
    now = 1000
    held = []

    def hold_second_ack(m):
        # The follower's ack of its second chunk: delayed.
        if m[0] == "sr" and not held and m[1] == "b" and m[5] >= 800:
            held.append(m)
            return True
        return False
    # (everything after the held ack is lost with the follower's memory)
    deliver(nodes, msgs, now, drop=lambda m: m[2] == "c" or bool(held) or hold_second_ack(m))
    assert held, "the follower acknowledged a chunk"
    # The follower restarts mid-transfer (nothing of the snapshot was stored)...
    b = nodes["b"] = mk("b", storage=store.storage(), max_bytes_per_msg=1000)
    sent = []

    def lose_a_chunk(m):
        # ... it asks for offset 0 and acks that chunk, but the next one is lost ...
        if m[0] == "s" and m[6] > 0:
            sent.append(m)
            return len(sent) == 2
        return m[2] == "c"
    while len(sent) < 2 and now < 1200:
        now = run(nodes, now, now + 10, drop=lose_a_chunk)
    assert len(sent) == 2
    # ... and the stale ack from before the restart arrives late.
    deliver(nodes, held, now, drop=lambda m: m[2] == "c")
    run(nodes, now, now + 3000, drop=lambda m: m[2] == "c")
    # Before the fix: the leader followed the stale ack and ignored the
    # follower's stated offset for good (commit 0 after any time).
    assert b.stats.get("snapshots_installed") == 1, (b.stats, a.stats)
    assert b.commit_index >= 3 and b.state_machine.data == a.state_machine.data


# ------------------------------------------------------------------ bug 4
def _net_with_leader_a():
    a, b, c = mk("a"), mk("b"), mk("c")
    net = Net([a, b, c], now=1000)
    net.pump(elect(a))
    return net, a, b, c


def _write(net, leader, cid, seq, cmd):
    leader.tick(net.now)
    leader.propose(cid, seq, cmd)
    net.pump()
    return net.result(cid, seq)


def test_duplicated_old_read_reply_cannot_complete_a_newer_read():
    net, a, b, c = _net_with_leader_a()
    nodes = net.nodes
    assert _write(net, a, "w", 1, ["put", "x", 1])[2] is None
    # A read on follower b; the network duplicates the leader's reply.
    replies = []

    def copy_reply(m):
        if m[0] == "rr":
            replies.append(m)
        return False
    b.read_index("r")
    reads = []
    deliver(nodes, drain(b)[0], net.now, drop=copy_reply, reads=reads)
    assert reads == [["b", ["r", None]]] and len(replies) == 1
    # x=2 is acknowledged while b is cut off, so b still has x=1.
    net.down.add("b")
    assert _write(net, a, "w", 2, ["put", "x", 2])[2] is None
    net.down.discard("b")
    assert b.state_machine.data["x"] == 1
    # A new read on b, reusing the ctx (allowed once the first completed):
    b.read_index("r")
    drain(b)
    # the duplicate of the OLD reply arrives first.
    b.step(replies[0])
    reads = drain(b)[2]
    # Before the fix: [["r", None]] with x still 1, a stale read.
    assert reads == [], reads
    assert b.stats.get("dropped_stale_reply", 0) >= 1


# ------------------------------------------------------------------ bug 5
def test_duplicate_of_an_applied_membership_change_is_not_applied_again():
    net, a, b, c = _net_with_leader_a()
    net.run(1200)

    def change(cid, seq, op, target):
        a.tick(net.now)
        a.change_membership(cid, seq, op, target)
        net.pump()
        net.run(net.now + 100)
        return net.result(cid, seq)
    assert change("op", 1, "add_learner", "d")[2] is None
    net.results = []
    assert change("op", 2, "remove", "d")[2] is None
    assert a.learners == []
    net.results = []
    # A late duplicate of the first request (a network copy, or a retry):
    r = change("op", 1, "add_learner", "d")
    # Before the fix: d was added a second time.
    assert a.learners == [] and r[2] is None, (a.learners, r)
    assert a.stats["membership_changes"] == 2
    # Two operators: one retries after the other's change.
    net.results = []
    assert change("op1", 1, "add_learner", "e")[2] is None
    net.results = []
    assert change("op2", 1, "remove", "e")[2] is None
    net.results = []
    assert change("op1", 1, "add_learner", "e")[2] is None
    assert a.learners == [], a.learners


# ------------------------------------------------------------------ bug 6
def test_follower_read_cut_off_after_its_read_index_times_out():
    net, a, b, c = _net_with_leader_a()
    assert _write(net, a, "w", 1, ["put", "x", 1])[2] is None
    net.down.add("b")
    assert _write(net, a, "w", 2, ["put", "x", 2])[2] is None
    net.down.discard("b")
    now = net.now
    b.tick(now)
    b.read_index("r")
    # The leader answers the read, but b never gets the entries it must
    # apply first (AppendEntries and heartbeats to b are lost) ...
    nodes = {"a": a, "b": b, "c": c}
    deliver(nodes, drain(b)[0], now, drop=lambda m: m[0] in ("a", "h") and m[2] == "b")
    assert b.applied_index < a.commit_index and b.local_reads
    # ... and then b is cut off altogether.
    for t in range(now, now + 3000, 50):
        b.tick(t)
        reads = drain(b)[2]
        if reads:
            break
    # Before the fix: the read waited forever.
    assert reads == [["r", "timeout"]], reads


def test_leader_read_without_check_quorum_times_out_when_cut_off():
    a = mk("a", check_quorum=False)
    elect(a)
    a.read_index("r")
    reads = []
    t = 1000
    while t < 1000 + 3 * a.cfg.request_timeout_ms and not reads:
        t += 50
        a.tick(t)
        reads = drain(a)[2]
    assert reads == [["r", "timeout"]], reads
    assert a.role == "leader"


# ------------------------------------------------------------------ smaller ones
def test_pre_candidate_steps_down_on_rejections_at_its_own_term():
    log = [[1, "x", 1, ["put", "x", 1]]]
    a = mk("a", storage=([1, None, 0], []))
    b = mk("b", storage=([1, None, 0], list(log)))
    c = mk("c", storage=([1, None, 0], list(log)))
    a.tick(a.election_deadline)
    assert a.role == "precandidate"
    pv = drain(a)[0]
    for m in pv:
        node = b if m[2] == "b" else c
        node.step(m)
        for r in drain(node)[0]:
            assert r[0] == "pvr" and r[3] == 1 and r[4] == 0   # rejected at term 1 = a's
            a.step(r)
    # Before the fix: both rejections were dropped as stale; a stayed a pre-candidate.
    assert a.role == "follower" and a.term == 1, a.role


def test_session_table_expires_least_recently_used_clients():
    s = Sessions(window=4, max_clients=3)
    kv = KVStateMachine()
    for i in range(1, 7):
        assert s.apply("c%d" % i, 1, ["put", "k", i], kv, i) == (None, i - 1 if i > 1 else None)
        if i == 2:
            s.apply("c1", 2, ["get", "k"], kv, 2)            # c1 used again: not the LRU
    assert sorted(s.clients) == ["c4", "c5", "c6"]
    # An expired client's later command is refused, never applied twice.
    before = dict(kv.data)
    assert s.apply("c2", 2, ["put", "k", "again"], kv, 7) == ("session_expired", None)
    assert kv.data == before
    # Deterministic on every replica, and kept across a snapshot.
    other = Sessions(window=4, max_clients=3)
    other.restore(json.loads(json.dumps(s.snapshot())))
    assert other.snapshot() == s.snapshot()
    assert other.apply("c1", 3, ["get", "k"], KVStateMachine(), 8) == ("session_expired", None)


def test_node_session_table_is_bounded():
    a = mk("a", voters=["a"], max_sessions=5)
    a.tick(a.election_deadline)
    drain(a)
    assert a.role == "leader"
    for i in range(40):
        a.propose("client%d" % i, 1, ["put", "k%d" % i, i])
        drain(a)
    drain(a)
    assert a.applied_index == 41 and len(a.sessions.clients) == 5
    assert len(a.snapshot_state()["sessions"]["clients"]) == 5


def test_retried_membership_change_after_compaction_and_restart_is_answered_done():
    nodes = [mk(i, snapshot_entries=8) for i in ABC]
    net = Net(nodes)
    net.run(2000)
    ld = net.nodes[net.leader()]
    ld.change_membership("adm", 1, "add_learner", "d")
    net.pump()
    net.run(net.now + 100)
    assert net.result("adm", 1)[2] is None
    for s in range(1, 30):
        ld.propose("w", s, ["put", "k", s])
        net.pump()
    net.run(net.now + 100)
    # Restart every node from what it stored (snapshot + tail + hard state).
    again = []
    for n in net.nodes.values():
        assert n.snapshot is not None and n.snapshot[0] > 1
        stored = json.loads(json.dumps([[n.term, n.vote, n.commit_index], n.log[1:], n.snapshot]))
        again.append(mk(n.id, storage=stored, snapshot_entries=8))
    net = Net(again, now=net.now)
    net.run(net.now + 2000)
    ld = net.nodes[net.leader()]
    assert ld.learners == ["d"] and ld.config_index == 0
    ld.tick(net.now)
    ld.change_membership("adm", 1, "add_learner", "d")
    net.pump()
    # Before the fix: ["adm", 1, "invalid", "d is already a learner"].
    assert net.result("adm", 1) == ["adm", 1, None, {"voters": ABC, "learners": ["d"]}]
