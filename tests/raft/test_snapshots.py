"""Log compaction rules: snapshots, InstallSnapshot in chunks, restart from
snapshot + tail. Plain functions (no pytest): they also run under
MicroPython and Pyodide (tests/mpy). Simulator scenarios: test_snapshot_scenarios.py."""
import json

from raft import Config, codec
from raft.node import Node
from raft.rng import Rng
from helpers import drain, of_type, elect, ack_all, Store


def snap_config(entries=20, nbytes=0, msg_bytes=1000):
    # Small messages force snapshots of several chunks (600 raw bytes each).
    return Config(election_min_ms=150, election_max_ms=300, heartbeat_ms=30,
                  snapshot_entries=entries, snapshot_bytes=nbytes,
                  max_bytes_per_msg=msg_bytes)


def node(nid="a", storage=None, **kw):
    return Node(nid, ["a", "b", "c"], snap_config(**kw), Rng(7).random, None, storage, 0)


class SnapStore(Store):
    """Test driver storage that follows the Ready contract for snapshots."""

    def __init__(self):
        Store.__init__(self)
        self.snap = None

    def save(self, rd):
        if rd.snapshot is not None:
            old = self.snap[0] if self.snap else 0
            idx = rd.snapshot[0]
            self.log = [] if rd.log_discarded else self.log[idx - old:]
            self.snap = json.loads(json.dumps(rd.snapshot))   # as stored: plain JSON
        base = self.snap[0] if self.snap else 0
        if rd.hard_state is not None:
            self.hs = list(rd.hard_state)
        if rd.entries:
            del self.log[rd.entries_from - 1 - base:]
            self.log.extend(rd.entries)

    def storage(self):
        return (list(self.hs), list(self.log), self.snap)


def leader_with_writes(n_writes, store=None, **kw):
    """Leader 'a' whose followers acked everything: writes committed + applied."""
    a = node(**kw)
    a.tick(1000)
    drain(a, store)
    for p in a.peers:
        a.step(["pvr", p, "a", a.term + 1, 1])
    drain(a, store)
    for p in a.peers:
        a.step(["vr", p, "a", a.term, 1])
    msgs = drain(a, store)[0]
    assert a.role == "leader"
    _ack(a, of_type(msgs, "a"), store)
    for i in range(1, n_writes + 1):
        a.propose("cl", i, ["put", "k%d" % (i % 5), "v%d" % i])
        msgs = drain(a, store)[0]
        _ack(a, of_type(msgs, "a"), store)
    drain(a, store)
    return a


def _ack(leader, msgs, store):
    """Followers acknowledge every AppendEntries; the leader's Readies are stored."""
    for m in msgs:
        if m[0] == "a":
            leader.step(["ar", m[2], leader.id, m[3], m[4] + len(m[6]), 0, 0, 0])
            _ack(leader, drain(leader, store)[0], store)


# ------------------------------------------------------------------ rules
def test_leader_compacts_log_past_threshold_and_emits_snapshot():
    st = SnapStore()
    a = leader_with_writes(45, st, entries=20)
    assert a.stats["snapshots_taken"] >= 2
    assert a.offset > 0 and a.snapshot[0] == a.offset
    assert len(a.log) - 1 <= 20 * 2           # the log stays bounded
    assert st.snap is not None and st.snap[0] == a.offset
    assert st.snap[2]["sm"] == a.state_machine.snapshot()[:] or a.applied_index > st.snap[0]
    assert len(st.log) == a.last_index() - st.snap[0]


def test_byte_threshold_triggers_compaction():
    a = leader_with_writes(200, None, entries=0, nbytes=3000)
    assert a.stats.get("snapshots_taken", 0) >= 1
    assert a.applied_index - a.offset < 200


def test_no_snapshot_when_thresholds_are_off():
    a = leader_with_writes(60, None, entries=0, nbytes=0)
    assert "snapshots_taken" not in a.stats and a.offset == 0


def test_restart_from_snapshot_and_tail_restores_committed_state():
    st = SnapStore()
    a = leader_with_writes(53, st, entries=20)
    before = a.state_machine.snapshot()
    b = node("a", st.storage())
    assert b.offset == st.snap[0] and b.applied_index == st.snap[0]
    drain(b)                                 # re-applies the tail up to commit
    assert b.commit_index == a.commit_index
    assert b.state_machine.snapshot() == before
    assert b.sessions.snapshot() == a.sessions.snapshot()


def test_damaged_snapshot_in_storage_refuses_to_start():
    st = SnapStore()
    leader_with_writes(30, st, entries=20)
    hs, log, snap = st.storage()
    for bad in ([snap[0]], [snap[0], snap[1], "x"], [snap[0] + 1, snap[1], snap[2]],
                [snap[0], hs[0] + 1, snap[2]], [snap[0], snap[1], {"index": snap[0]}]):
        try:
            node("a", (hs, log, bad))
        except ValueError as e:
            assert "snapshot" in str(e)
        else:
            raise AssertionError("accepted %r" % (bad,))
    # a tail that does not fit the commit index is refused too
    try:
        node("a", ([hs[0], None, snap[0] + len(log) + 1], log, snap))
    except ValueError as e:
        assert "commit" in str(e)
    else:
        raise AssertionError("accepted commit beyond the log")


def _install_all(leader, follower, drop_first_chunk=False):
    """Run InstallSnapshot between two nodes until the follower is done."""
    leader.tick(leader.now + 30)
    out = drain(leader)[0]
    dropped = False
    for _ in range(500):
        to_f = [m for m in out if m[2] == follower.id]
        out = []
        for m in to_f:
            if m[0] == "s" and drop_first_chunk and not dropped:
                dropped = True
                continue
            follower.step(m)
        back = drain(follower)[0]
        for m in back:
            leader.step(m)
        out = drain(leader)[0]
        if not to_f:
            # lost chunk: the next heartbeat reply makes the leader resend it
            leader.tick(leader.now + 30)
            out = drain(leader)[0]
            for m in of_type(out, "h", follower.id):
                follower.step(m)
                for r in drain(follower)[0]:
                    leader.step(r)
            out += drain(leader)[0]
        if follower.applied_index >= leader.snapshot[0] and not of_type(out, "s"):
            return
    raise AssertionError("install did not finish")


def test_install_snapshot_in_chunks_with_resume_after_lost_chunk():
    a = leader_with_writes(80, None, entries=20)
    c = node("c")
    c.tick(1)
    a.progress["c"].match = 0                 # c lost everything: it needs the snapshot
    a.progress["c"].become_probe(1)
    a.send_append("c", True)
    assert a.progress["c"].state == 2
    _install_all(a, c, drop_first_chunk=True)
    assert c.stats["snapshots_installed"] == 1
    chunks = 0
    at = 0
    while at < len(a.snap_blob):
        at += len(codec.text_piece(a.snap_blob, at, a.cfg.max_bytes_per_msg - codec.MSG_OVERHEAD))
        chunks += 1
    assert chunks >= 2
    # every chunk once, plus the one resent after its loss
    assert a.stats["snapshot_chunks_sent"] == chunks + 1
    assert c.state_machine.data == dict(a.state_machine.snapshot()) or c.applied_index < a.applied_index
    # then ordinary replication brings c to the leader's commit
    for _ in range(20):
        a.tick(a.now + 30)
        for m in drain(a)[0]:
            if m[2] == "c":
                c.step(m)
        for m in drain(c)[0]:
            a.step(m)
    drain(a)
    assert c.commit_index == a.commit_index
    drain(c)
    assert c.state_machine.data == a.state_machine.data


def test_snapshot_chunks_stay_under_message_limit():
    a = node(entries=5, msg_bytes=60000)
    msgs = elect(a)
    ack_all(a, of_type(msgs, "a"))
    big = "x" * 5000 + "\u00e9\u4e2d" * 1000              # multi-byte text too
    for i in range(1, 60):
        a.propose("cl", i, ["put", "k%d" % i, big])
        ack_all(a, of_type(drain(a)[0], "a"))
    drain(a)
    a.progress["b"].match = 0
    a.progress["b"].become_probe(1)
    a.send_append("b", True)
    chunk = of_type(drain(a)[0], "s")
    assert chunk and all(len(codec.encode(m).encode()) <= 64000 for m in chunk)
    assert codec.decode(codec.encode(chunk[0])) == chunk[0]


def _follower_with_log(entries):
    f = node("b")
    f.tick(1)
    f.step(["a", "a", "b", 3, 0, 0, entries, 0])
    drain(f)
    return f


def _snapshot_message(index, term, data):
    return ["s", "a", "b", 3, index, term, 0, json.dumps(data), 1]


def test_follower_keeps_log_suffix_when_it_has_the_snapshot_entry():
    ents = [[1, "x", i, ["put", "k", i]] for i in range(1, 7)]
    f = _follower_with_log(ents)
    data = {"sm": [["k", 4]], "sessions": [["x", 0, [[q, None] for q in range(1, 5)]]], "index": 4}
    st = SnapStore()
    f.step(_snapshot_message(4, 1, data))
    msgs, _, _ = drain(f, st)
    assert f.offset == 4 and f.last_index() == 6        # suffix 5..6 kept
    assert f.state_machine.data == {"k": 4} and f.applied_index == 4
    sr = of_type(msgs, "sr")[0]
    assert sr[4] == 4 and sr[7] == 1                    # installed: done


def test_follower_discards_log_when_snapshot_term_conflicts():
    ents = [[1, "x", i, ["put", "k", i]] for i in range(1, 7)]
    f = _follower_with_log(ents)
    data = {"sm": [["k", "other"]], "sessions": [], "index": 5}
    f.step(_snapshot_message(5, 2, data))
    drain(f)
    assert f.offset == 5 and f.last_index() == 5 and f.log[0][0] == 2
    assert f.state_machine.data == {"k": "other"}


def test_bad_snapshot_chunks_are_dropped_not_raised():
    f = _follower_with_log([[1, "x", 1, ["put", "k", 1]]])
    f.step(["s", "a", "b", 3, 9, 1, 0, "{not json", 1])
    f.step(["s", "a", "b", 3, 9, 1, 0, '{"index": 8, "sm": [], "sessions": []}', 1])
    f.step(["s", "a", "b", 3, 9, 1, 5, "{}", 0])                    # gap: wants 0
    msgs = drain(f)[0]
    assert f.offset == 0 and f.state_machine.data == {}
    assert f.stats.get("dropped_bad_snapshot") == 2
    assert [m[6] for m in of_type(msgs, "sr")][-1] == 0
    for bad in (["s", "a", "b", 3, 9, 4, 0, "", 1], ["s", "a", "b", 3, 0, 1, 0, "", 1],
                ["s", "a", "b", 3, 9, 1, 0, 7, 1], ["sr", "a", "b", 3, 1, 0, -1, 0],
                ["sr", "a", "b", 3, 1, 0, 1, 2], ["sr", "a", "b", 3, 1, 1, 0]):
        assert codec.problem(bad) is not None
        before = f.stats.get("dropped_malformed", 0)
        f.step(bad)
        assert f.stats["dropped_malformed"] == before + 1


def test_snapshot_ready_says_whether_the_stored_log_is_on_a_majority_of_the_others():
    class Flags(SnapStore):
        def __init__(self):
            SnapStore.__init__(self)
            self.flags = []

        def save(self, rd):
            if rd.snapshot is not None:
                self.flags.append(rd.log_replicated)
            SnapStore.save(self, rd)
    st = Flags()
    leader_with_writes(45, st, entries=20)      # both followers acked everything
    assert st.flags and all(st.flags), st.flags
    # A follower never knows that: its snapshots say no.
    f = node("b")
    ents = [[1, None, 0, None]] + [[1, "x", i, ["put", "k", i]] for i in range(1, 50)]
    f.step(["a", "a", "b", 1, 0, 0, ents, 50])
    st = Flags()
    drain(f, st)
    f.step(["h", "a", "b", 1, 50, 0])
    drain(f, st)
    assert st.flags == [False], st.flags
