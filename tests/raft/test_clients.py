"""Client-facing rules: proposals, exactly-once sessions, ReadIndex, the KV
machine, Config and the constructor (plain asserts: also run under MicroPython)."""
from raft import Node, Config, KVStateMachine, Sessions
from raft.node import LEADER
from helpers import make_node, drain, of_type, elect, ack_all


def _leader_with_committed_noop():
    n = make_node()
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a", "b"))
    drain(n)
    assert n.commit_index == 1
    return n


def _commit_everything(n):
    """b acknowledges the leader's whole log; returns results."""
    n.step(["ar", "b", "a", n.term, n.last_index(), 0, 0, 0])
    return drain(n)[1]


# ------------------------------------------------------------------ proposals
def test_propose_on_leader_returns_result_once_committed():
    n = _leader_with_committed_noop()
    n.propose("c1", 1, ["put", "x", 5])
    assert drain(n)[1] == []                      # not committed yet
    assert _commit_everything(n) == [["c1", 1, None, None]]
    n.propose("c1", 2, ["get", "x"])
    assert _commit_everything(n) == [["c1", 2, None, 5]]


def test_propose_without_leader_fails_no_leader():
    n = make_node()
    n.propose("c1", 1, ["put", "x", 1])
    assert drain(n)[1] == [["c1", 1, "no_leader", None]]


def test_propose_on_follower_is_forwarded_and_result_comes_from_local_apply():
    n = make_node()
    n.step(["h", "b", "a", 1, 0, 0])
    n.propose("c1", 1, ["put", "x", 1])
    msgs, results, _ = drain(n)
    assert ["p", "a", "b", 1, "c1", 1, ["put", "x", 1]] in msgs and results == []
    n.step(["a", "b", "a", 1, 0, 0, [[1, None, 0, None], [1, "c1", 1, ["put", "x", 1]]], 2])
    assert drain(n)[1] == [["c1", 1, None, None]]


def test_forwarded_proposal_failure_comes_back_to_proposer():
    n = make_node()
    n.step(["h", "b", "a", 1, 0, 0])
    n.propose("c1", 1, ["put", "x", 1])
    drain(n)
    n.step(["pr", "b", "a", 1, "c1", 1, "too_many_pending", "b"])
    assert drain(n)[1] == [["c1", 1, "too_many_pending", "b"]]


def test_leader_rejects_forwarded_proposal_when_not_leader():
    n = make_node()
    n.step(["p", "b", "a", 0, "c1", 1, ["put", "x", 1]])
    assert drain(n)[0] == [["pr", "a", "b", 0, "c1", 1, "no_leader", None]]


def test_too_many_pending_and_too_large():
    n = make_node(max_uncommitted=3)
    elect(n)
    for i in range(1, 5):
        n.propose("c1", i, ["put", "x", i])
    results = drain(n)[1]
    assert results == [["c1", 3, "too_many_pending", "a"], ["c1", 4, "too_many_pending", "a"]]
    n.propose("c2", 1, ["put", "x", "z" * 70000])
    assert drain(n)[1] == [["c2", 1, "too_large", "a"]]


def test_invalid_proposal_is_refused_not_raised():
    n = make_node()
    n.propose("", 1, ["put", "x", 1])
    n.propose("c", 0, ["put", "x", 1])
    n.propose("c", 1, set([1]))
    results = drain(n)[1]
    assert [r[2] for r in results] == ["invalid", "invalid", "invalid"]


def test_leadership_lost_reported_when_leader_steps_down():
    n = _leader_with_committed_noop()
    n.propose("c1", 1, ["put", "x", 1])
    drain(n)
    n.step(["v", "c", "a", n.term + 1, 99, n.term])   # ignored: leader still in lease
    assert n.role == LEADER and n.stats["dropped_in_lease"] == 1
    n.tick(5000)                                        # no replies: CheckQuorum
    results = drain(n)[1]
    assert n.role != LEADER
    assert ["c1", 1, "leadership_lost", None] in results


def test_forwarded_proposal_lost_times_out():
    n = make_node(request_timeout_ms=500, election_min_ms=1000, election_max_ms=2000)
    n.step(["h", "b", "a", 1, 0, 0])
    n.propose("c1", 1, ["put", "x", 1])
    drain(n)
    n.tick(400)
    assert drain(n)[1] == []
    n.tick(520)
    assert drain(n)[1] == [["c1", 1, "timeout", "b"]]


def test_retry_with_same_seq_applies_once_and_returns_original_result():
    n = _leader_with_committed_noop()
    n.propose("c1", 1, ["cas", "x", None, 1])
    assert _commit_everything(n) == [["c1", 1, None, [True, 1]]]
    n.propose("c1", 1, ["cas", "x", None, 1])          # retried after a lost reply
    assert _commit_everything(n) == [["c1", 1, None, [True, 1]]]
    assert n.state_machine.data == {"x": 1}
    n.propose("c1", 2, ["cas", "x", None, 2])
    assert _commit_everything(n) == [["c1", 2, None, [False, 1]]]


def test_restart_reapplies_committed_entries_with_sessions():
    n = _leader_with_committed_noop()
    n.propose("c1", 1, ["put", "x", 1])
    n.propose("c1", 1, ["put", "x", 2])          # duplicate in the log
    _commit_everything(n)
    storage = ([n.term, n.vote, n.commit_index], [list(e) for e in n.log[1:]])
    again = make_node(storage=storage)
    assert again.applied_index == 0
    drain(again)
    assert again.applied_index == 3 and again.state_machine.data == {"x": 1}  # the copy skipped


class Stamped:
    """A state machine that takes the entry's place: apply_entry(index, term, command)."""

    def __init__(self):
        self.seen = []
        self.data = {}

    def apply_entry(self, index, term, command):
        self.seen.append([index, term, command])
        self.data[command[1]] = command[2]
        return index

    def apply(self, command):
        raise AssertionError("apply_entry is used when there is one")

    def snapshot(self):
        return [self.seen, self.data]

    def restore(self, data):
        self.seen, self.data = data


def test_state_machine_with_apply_entry_gets_each_entrys_index_and_term_once():
    from raft import Node
    from raft.rng import Rng
    from helpers import config
    n = Node("a", ["a"], config(), Rng(7).random, Stamped(), None, 0)
    n.tick(n.election_deadline)
    drain(n)
    assert n.role == "leader"
    n.propose("c1", 1, ["put", "x", 1])
    n.propose("c1", 1, ["put", "x", 1])           # a retry that reached the log twice
    n.propose("c2", 1, ["put", "y", 2])
    results = drain(n)[1]
    t = n.term
    assert n.state_machine.seen == [[2, t, ["put", "x", 1]], [4, t, ["put", "y", 2]]]
    # the result is the state machine's, the retry gets the original one
    assert sorted(results) == [["c1", 1, None, 2], ["c2", 1, None, 4]]
    # across batches too: copies at 5 and 7, applied once each, at 6 only
    n.propose("c1", 1, ["put", "x", 1])
    n.propose("c1", 2, ["put", "z", 3])
    n.propose("c1", 2, ["put", "z", 3])
    drain(n)
    assert n.state_machine.seen[2:] == [[6, t, ["put", "z", 3]]]


def test_accessors_for_outside_readers():
    n = _leader_with_committed_noop()
    for s in range(1, 5):
        n.propose("c1", s, ["put", "x", s])
    msgs = drain(n)[0]
    assert n.first_index() == 1 and n.last_index() == 5
    assert n.entries(2, 3) == [n.log[2], n.log[3]] and n.entries(2, 9) is None
    assert n.replicated_on(5) == (1, True)                 # only the leader so far
    ack_all(n, of_type(msgs, "a", "b"))
    drain(n)
    assert n.replicated_on(5) == (2, True) and n.replicated_on(1) == (2, True)
    f = make_node("b")
    f.step(["a", "a", "b", 1, 0, 0, [[1, None, 0, None], [1, "c1", 1, ["put", "x", 1]]], 2])
    drain(f)
    assert f.replicated_on(2) == (2, False)                # committed: on a majority at least
    f.step(["a", "a", "b", 1, 2, 1, [[1, "c1", 2, ["put", "x", 2]]], 2])
    drain(f)
    assert f.replicated_on(3) == (1, False)


# ------------------------------------------------------------------ ReadIndex
def test_read_index_on_leader_waits_for_heartbeat_quorum():
    n = _leader_with_committed_noop()
    n.read_index("r1")
    msgs, _, reads = drain(n)
    assert reads == []
    hb = of_type(msgs, "h")
    assert len(hb) == 2 and hb[0][5] == 1
    n.step(["hr", "b", "a", n.term, 1])
    assert drain(n)[2] == [["r1", None]]


def test_read_index_waits_for_leader_noop_commit():
    n = make_node()
    msgs = elect(n)
    n.read_index(7)
    assert drain(n)[2] == []
    hb = of_type(ack_all(n, of_type(msgs, "a", "b")), "h", "c")
    n.step(["hr", "c", "a", n.term, hb[0][5]])
    assert drain(n)[2] == [[7, None]]


def test_read_index_forwarded_from_follower_waits_for_apply():
    n = make_node()
    n.step(["a", "b", "a", 1, 0, 0, [[1, None, 0, None], [1, "c", 1, ["put", "k", 1]]], 0])
    drain(n)
    n.read_index("q")
    req = of_type(drain(n)[0], "r", "b")
    assert len(req) == 1 and req[0][4] != "q"   # a wire id of the node's own, never reused
    n.step(["rr", "b", "a", 1, "q", 2, None])   # a reply naming the app's ctx is not ours
    assert drain(n)[2] == [] and n.stats["dropped_stale_reply"] == 1
    n.step(["rr", "b", "a", 1, req[0][4], 2, None])
    assert drain(n)[2] == []                    # index 2 not applied yet
    n.step(["h", "b", "a", 1, 2, 0])
    assert drain(n)[2] == [["q", None]]
    assert n.state_machine.data == {"k": 1}


def test_read_index_without_leader_fails():
    n = make_node()
    n.read_index("q")
    n.read_index(["bad"])
    assert drain(n)[2] == [["q", "no_leader"], [["bad"], "invalid"]]


def test_leader_answers_forwarded_read():
    n = _leader_with_committed_noop()
    n.step(["r", "c", "a", n.term, "q"])
    hb = of_type(drain(n)[0], "h", "b")
    n.step(["hr", "b", "a", n.term, hb[0][5]])
    assert ["rr", "a", "c", n.term, "q", 1, None] in drain(n)[0]


# ------------------------------------------------------------------ sessions + KV
def test_sessions_dedup_window_and_expiry():
    s = Sessions(window=2)
    kv = KVStateMachine()
    assert s.apply("c", 1, ["put", "a", 1], kv) == (None, None)
    assert s.apply("c", 1, ["put", "a", 9], kv) == (None, None)
    assert kv.data == {"a": 1}
    for q in range(2, 8):
        s.apply("c", q, ["put", "a", q], kv)
    assert s.apply("c", 1, ["put", "a", 100], kv) == ("session_expired", None)
    assert s.apply("c", 7, ["put", "a", 100], kv) == (None, 6)
    assert kv.data == {"a": 7}


def test_sessions_apply_out_of_order_seqs_once_each():
    s = Sessions()
    kv = KVStateMachine()
    s.apply("c", 2, ["put", "b", 2], kv)
    s.apply("c", 1, ["put", "a", 1], kv)        # an older seq retried later still applies
    s.apply("c", 2, ["put", "b", 3], kv)
    assert kv.data == {"a": 1, "b": 2}


def test_sessions_and_state_machine_snapshot_restore():
    n = _leader_with_committed_noop()
    n.propose("c1", 1, ["put", "x", 1])
    _commit_everything(n)
    data = n.snapshot_state()
    other = make_node("b")
    other.restore_state(data)
    assert other.state_machine.data == {"x": 1}
    assert other.sessions.apply("c1", 1, ["put", "x", 2], other.state_machine) == (None, None)
    assert other.state_machine.data == {"x": 1}


def test_kv_commands():
    kv = KVStateMachine()
    assert kv.apply(["put", "k", 1]) is None
    assert kv.apply(["put", "k", 2]) == 1
    assert kv.apply(["get", "k"]) == 2
    assert kv.apply(["cas", "k", 1, 3]) == [False, 2]
    assert kv.apply(["cas", "k", 2, 3]) == [True, 3]
    assert kv.apply(["del", "k"]) is True
    assert kv.apply(["del", "k"]) is False
    assert kv.apply(["get", "k"]) is None
    assert kv.apply(["nope", "k"])[0] == "error"
    assert kv.apply("put")[0] == "error"
    assert kv.apply(["put", 5, 1])[0] == "error"
    kv.apply(["put", "b", [1]])
    kv.apply(["put", "a", {"x": 1}])
    snap = kv.snapshot()
    assert snap == [["a", {"x": 1}], ["b", [1]]]
    kv2 = KVStateMachine()
    kv2.restore(snap)
    assert kv2.data == kv.data


# ------------------------------------------------------------------ construction
def _raises(fn):
    try:
        fn()
    except ValueError:
        return True
    return False


def test_config_and_constructor_reject_bad_values():
    assert _raises(lambda: Config(election_min_ms=100, election_max_ms=100))
    assert _raises(lambda: Config(heartbeat_ms=2000))
    assert _raises(lambda: Config(max_bytes_per_msg=70000))
    assert _raises(lambda: Config(max_inflight=0))
    assert _raises(lambda: Node("", ["a"]))
    # a node outside the bootstrap voters is an outsider (membership), not an error
    assert Node("a", ["b", "c"]).membership == "none"
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, 5, 0], [])))
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, "", 0], [])))
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, None, 5], [])))
    assert _raises(lambda: Node("a", ["a", 5]))
    # a damaged persisted log is refused with a clear error, not used
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, None, 0], [[2, None, 0, None]])))
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, None, 0], [[1, "c"]])))
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, None, 0], [[1, "c", 0, 1]])))
    assert _raises(lambda: Node("a", ["a", "b"], storage=([1, None, 0], "xx")))
    assert _raises(lambda: Node("a", ["a", "b"], storage=[[1, None], []]))
    assert _raises(lambda: Node("a", ["a", "b"], storage="junk"))
    assert Config().request_timeout_ms == 6000


def test_single_node_cluster_commits_alone():
    n = Node("solo", ["solo"], Config(election_min_ms=150, election_max_ms=300, heartbeat_ms=30))
    n.tick(400)
    drain(n)
    assert n.role == LEADER
    n.propose("c", 1, ["put", "k", 1])
    assert drain(n)[1] == [["c", 1, None, None]]
    n.read_index("r")
    assert drain(n)[2] == [["r", None]]


def test_next_deadline_tells_driver_when_to_tick():
    n = make_node()
    assert n.next_deadline() == n.election_deadline
    elect(n, now=1000)
    assert n.next_deadline() == 1030
