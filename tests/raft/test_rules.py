"""One unit test per Raft rule of the core (plain asserts: also run under MicroPython)."""
from raft import codec
from raft.node import LEADER, FOLLOWER, CANDIDATE, PRECANDIDATE
from helpers import make_node, drain, of_type, elect, ack_all, Store


def _follower_with_log(terms, term=None, nid="a"):
    """A node whose persisted log has entries of the given terms."""
    entries = [[t, "c", i + 1, ["put", "k", i]] for i, t in enumerate(terms)]
    t = term if term is not None else (terms[-1] if terms else 0)
    return make_node(nid, storage=([t, None, 0], entries))


# ------------------------------------------------------------------ elections
def test_election_timeout_is_randomized_within_bounds():
    seen = set()
    for seed in range(20):
        from raft.rng import Rng
        from raft import Node
        from helpers import config
        n = Node("a", ["a", "b", "c"], config(), Rng(seed).random)
        assert 150 <= n.election_deadline < 300
        seen.add(n.election_deadline)
    assert len(seen) > 5


def test_no_election_before_timeout():
    n = make_node(pre_vote=False)
    n.tick(n.election_deadline - 1)
    assert n.role == FOLLOWER and n.term == 0
    n.tick(n.election_deadline)
    assert n.role == CANDIDATE and n.term == 1 and n.vote == "a"
    msgs = drain(n)[0]
    assert len(of_type(msgs, "v")) == 2


def test_candidate_with_majority_becomes_leader_and_appends_noop():
    n = make_node()
    msgs = elect(n)
    assert n.role == LEADER and n.leader_id == "a"
    assert n.log[1] == [n.term, None, 0, None]
    apps = of_type(msgs, "a")
    assert sorted(m[2] for m in apps) == ["b", "c"]
    assert apps[0][6] == [[n.term, None, 0, None]]


def test_vote_granted_to_up_to_date_candidate_and_persisted_first():
    n = _follower_with_log([1, 1])
    n.step(["v", "b", "a", 2, 2, 1])
    rd = n.ready()
    assert rd.hard_state == [2, "b", 0]          # persisted in the same Ready...
    assert rd.messages == [["vr", "a", "b", 2, 1]]  # ...before this is sent
    n.advance(rd)


def test_vote_denied_when_candidate_log_shorter_than_voters_uncommitted_log():
    # The original compared with the voter's commit index: this candidate
    # (last index 2 > commit 0) would have won and lost entry 3.
    n = _follower_with_log([1, 1, 1])
    n.step(["v", "b", "a", 2, 2, 1])
    msgs = drain(n)[0]
    assert msgs == [["vr", "a", "b", 2, 0]]
    assert n.vote is None and n.term == 2


def test_vote_denied_when_candidate_last_term_older_even_if_longer():
    n = _follower_with_log([1, 2])
    n.step(["v", "b", "a", 3, 10, 1])
    assert drain(n)[0] == [["vr", "a", "b", 3, 0]]


def test_one_vote_per_term_even_across_restart():
    store = Store()
    n = make_node(storage=([0, None, 0], []))
    n.step(["v", "b", "a", 1, 0, 0])
    msgs = drain(n, store)[0]
    assert msgs == [["vr", "a", "b", 1, 1]]
    n.step(["v", "c", "a", 1, 0, 0])
    assert drain(n, store)[0] == [["vr", "a", "c", 1, 0]]
    again = make_node(storage=store.storage())       # crash + restart
    again.step(["v", "c", "a", 1, 0, 0])
    assert drain(again)[0] == [["vr", "a", "c", 1, 0]]
    again.step(["v", "b", "a", 1, 0, 0])             # same candidate may ask again
    assert drain(again)[0] == [["vr", "a", "b", 1, 1]]


def test_stale_term_append_rejected_and_does_not_reset_timer():
    n = make_node(storage=([5, None, 0], []))
    deadline = n.election_deadline
    n.tick(deadline - 10)
    n.step(["a", "b", "a", 4, 0, 0, [], 0])
    msgs = drain(n)[0]
    assert msgs == [["ar", "a", "b", 5, 0, 1, 0, 0]]   # tells the old leader our term
    assert n.election_deadline == deadline and n.leader_id is None
    assert n.stats["dropped_stale_term"] == 1


def test_current_leader_append_resets_timer():
    n = make_node()
    n.tick(100)
    n.step(["a", "b", "a", 1, 0, 0, [[1, None, 0, None]], 0])
    assert n.leader_id == "b" and n.election_deadline >= 250


def test_higher_term_reply_makes_leader_step_down():
    n = make_node()
    elect(n)
    n.step(["ar", "b", "a", n.term + 1, 0, 1, 0, 0])
    assert n.role == FOLLOWER and n.leader_id is None


# ------------------------------------------------------------------ PreVote / CheckQuorum
def test_pre_vote_does_not_increase_term_when_isolated():
    n = make_node()
    for t in (1000, 2000, 3000, 4000):
        n.tick(t)
        msgs = drain(n)[0]
        assert n.role == PRECANDIDATE and n.term == 0
        assert of_type(msgs, "pv") and all(m[3] == 1 for m in of_type(msgs, "pv"))


def test_pre_vote_granted_without_changing_voter_term():
    n = _follower_with_log([1])
    n.step(["pv", "b", "a", 2, 1, 1])
    assert drain(n)[0] == [["pvr", "a", "b", 2, 1]]
    assert n.term == 1 and n.vote is None


def test_pre_vote_rejected_when_candidate_log_behind():
    n = _follower_with_log([1, 1])
    n.step(["pv", "b", "a", 2, 1, 1])
    assert drain(n)[0] == [["pvr", "a", "b", 1, 0]]


def test_pre_vote_majority_starts_real_election():
    n = make_node()
    n.tick(1000)
    drain(n)
    n.step(["pvr", "b", "a", 1, 1])
    msgs = drain(n)[0]
    assert n.role == CANDIDATE and n.term == 1
    assert len(of_type(msgs, "v")) == 2


def test_follower_in_lease_ignores_disruptive_votes():
    n = make_node()
    n.tick(100)
    n.step(["h", "b", "a", 1, 0, 0])
    drain(n)
    n.step(["v", "c", "a", 2, 5, 1])
    n.step(["pv", "c", "a", 2, 5, 1])
    assert drain(n)[0] == [] and n.term == 1
    assert n.stats["dropped_in_lease"] == 2
    n.tick(100 + 150)                  # lease over: now it may vote
    n.step(["v", "c", "a", 2, 5, 1])
    assert ["vr", "a", "c", 2, 1] in drain(n)[0]


def test_check_quorum_leader_steps_down_within_election_timeout():
    n = make_node()
    elect(n, now=1000)
    assert n.has_quorum
    t = 1000
    while n.role == LEADER and t < 2000:
        t += 10
        n.tick(t)
        drain(n)
    assert n.role == FOLLOWER and n.leader_id is None and not n.has_quorum
    assert t - 1000 <= 150 + 30        # election timeout (+ one heartbeat)


def test_check_quorum_leader_keeps_office_with_majority_replies():
    n = make_node()
    elect(n, now=1000)
    for t in range(1030, 2000, 30):
        n.tick(t)
        for m in of_type(drain(n)[0], "h", "b"):
            n.step(["hr", "b", "a", m[3], m[5]])
    assert n.role == LEADER and n.has_quorum


def test_minority_follower_knows_it_has_no_leader():
    n = make_node()
    n.step(["h", "b", "a", 1, 0, 0])
    assert n.has_quorum and n.leader_id == "b"
    n.tick(400)
    drain(n)
    assert n.leader_id is None and not n.has_quorum


# ------------------------------------------------------------------ log replication
def test_follower_appends_and_acknowledges_last_new_index():
    n = make_node()
    n.step(["a", "b", "a", 1, 0, 0, [[1, None, 0, None], [1, "c", 1, ["put", "x", 1]]], 0])
    rd = n.ready()
    assert rd.entries_from == 1 and len(rd.entries) == 2
    assert rd.messages == [["ar", "a", "b", 1, 2, 0, 0, 0]]
    n.advance(rd)


def test_truncate_conflicting_suffix_longer_than_leader_entries():
    # The original crashed when the follower's conflicting tail was longer.
    n = _follower_with_log([1, 2, 2, 2, 2, 2, 2], term=2)
    n.step(["a", "b", "a", 3, 1, 1, [[3, None, 0, None]], 0])
    rd = n.ready()
    assert n.last_index() == 2 and n.term_at(2) == 3
    assert rd.entries_from == 2 and rd.entries == [[3, None, 0, None]]
    n.advance(rd)


def test_reordered_old_append_does_not_truncate_matching_entries():
    n = make_node()
    e = [[1, "c", i, ["put", "k", i]] for i in range(1, 6)]
    n.step(["a", "b", "a", 1, 0, 0, e, 0])
    drain(n)
    n.step(["a", "b", "a", 1, 0, 0, e[:2], 0])     # a late duplicate of an earlier batch
    msgs = drain(n)[0]
    assert n.last_index() == 5
    assert msgs == [["ar", "a", "b", 1, 2, 0, 0, 0]]


def test_append_with_missing_prev_rejected_with_term_hint():
    n = _follower_with_log([1, 1, 2, 2, 2], term=2)
    n.step(["a", "b", "a", 3, 9, 3, [], 0])
    msgs = drain(n)[0]
    assert msgs == [["ar", "a", "b", 3, 9, 1, 5, 2]]
    n.step(["a", "b", "a", 3, 5, 3, [], 0])
    msgs = drain(n)[0]
    # hint: our last index whose term is <= prev_term (the leader skips from there)
    assert msgs == [["ar", "a", "b", 3, 5, 1, 5, 2]]
    n.step(["a", "b", "a", 3, 4, 1, [], 0])
    assert drain(n)[0] == [["ar", "a", "b", 3, 4, 1, 2, 1]]   # all of term 2 skipped


def test_leader_backs_off_one_round_trip_per_term():
    leader = _follower_with_log([1, 1, 3, 3, 3, 3, 3, 3], term=3)
    msgs = elect(leader)                 # term 4, no-op at index 9
    probe = of_type(msgs, "a", "b")[0]
    assert probe[4] == 8
    # follower b has [1, 1, 2 x 20]: rejects with hint (min(8, 22) -> last term<=3 index)
    leader.step(["ar", "b", "a", 4, 8, 1, 8, 2])
    probe2 = of_type(drain(leader)[0], "a", "b")[0]
    # leader skips all its term-3 entries (> 2): next probe at prev index 2
    assert probe2[4] == 2 and probe2[5] == 1
    leader.step(["ar", "b", "a", 4, 2 + len(probe2[6]), 0, 0, 0])
    assert leader.progress["b"].match == 9


def test_commit_needs_majority_of_current_term():
    n = make_node()
    msgs = elect(n)
    assert n.commit_index == 0
    ack_all(n, of_type(msgs, "a", "b"))
    assert n.commit_index == 1


def test_leader_never_commits_older_term_entry_by_counting():
    # Figure 8: an entry from term 2 on a majority is not committed by term 4
    # until an entry of term 4 is replicated too.
    n = _follower_with_log([1, 2], term=3)
    msgs = elect(n)                        # term 4, no-op at 3
    n.step(["ar", "b", "a", n.term, 2, 0, 0, 0])
    drain(n)
    assert n.commit_index == 0
    n.step(["ar", "b", "a", n.term, 3, 0, 0, 0])
    drain(n)
    assert n.commit_index == 3


def test_commit_resumes_after_full_restart():
    # The original stalled for good: entries of old terms never committed.
    storage = ([1, "a", 0], [[1, None, 0, None], [1, "c", 1, ["put", "k", 1]]])
    n = make_node(storage=storage)
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a", "b"))
    drain(n)
    assert n.commit_index == 3 and n.applied_index == 3
    assert n.state_machine.data == {"k": 1}


def test_heartbeat_carries_commit_but_not_beyond_follower_match():
    n = make_node()
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a", "b"))
    n.tick(1000 + 30)
    hb = dict((m[2], m) for m in of_type(drain(n)[0], "h"))
    assert hb["b"][4] == 1 and hb["c"][4] == 0


def test_batches_capped_by_count_and_bytes():
    n = make_node()
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a"))
    for i in range(1200):
        n.propose("cl", i + 1, ["put", "k", "x" * 10])
    msgs = of_type(drain(n)[0], "a", "b")
    assert msgs and all(len(m[6]) <= 512 for m in msgs)
    assert max(len(m[6]) for m in msgs) == 512
    for i in range(200):
        n.propose("big", i + 1, ["put", "k", "y" * 2000])
    for m in of_type(ack_all(n, msgs), "a", "b"):
        assert len(codec.encode(m)) <= 64 * 1024
    assert n.stats.get("dropped_malformed", 0) == 0


def test_pipelining_sends_up_to_inflight_window_without_waiting():
    n = make_node(max_inflight=4, max_entries_per_msg=10)
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a", "b"))       # b now in replicate state
    for i in range(100):
        n.propose("cl", i + 1, ["put", "k", i])
    sent = of_type(drain(n)[0], "a", "b")
    assert len(sent) == 4 and [len(m[6]) for m in sent] == [10, 10, 10, 10]
    # one reply immediately releases the next batch
    m = sent[0]
    n.step(["ar", "b", "a", m[3], m[4] + 10, 0, 0, 0])
    nxt = of_type(drain(n)[0], "a", "b")
    assert len(nxt) == 1 and nxt[0][4] == sent[-1][4] + 10


def test_lost_batch_recovered_through_heartbeat_reply():
    n = make_node(max_inflight=2, max_entries_per_msg=5)
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a", "b"))
    for i in range(10):
        n.propose("cl", i + 1, ["put", "k", i])
    drain(n)                                   # both batches lost
    n.step(["hr", "b", "a", n.term, 0])
    m = of_type(drain(n)[0], "a", "b")
    assert m, "leader must retry after a heartbeat reply"
    n.step(["ar", "b", "a", n.term, m[0][4], 1, 1, n.term])   # follower lacks them
    again = of_type(drain(n)[0], "a", "b")
    assert again and again[0][4] == 1


def test_batch_byte_cap_counts_utf8_bytes_not_characters():
    n = make_node()
    msgs = elect(n)
    ack_all(n, of_type(msgs, "a"))
    for i in range(200):
        n.propose("cl", i + 1, ["put", "k", "\u00e9\u4e2d" * 400])
    sent = of_type(drain(n)[0], "a", "b")
    assert sent
    for m in sent:
        assert len(codec.encode(m).encode()) <= 64 * 1024


def test_leader_unreachable_campaigns_early_and_never_disrupts_a_live_leader():
    """raft.Node.leader_unreachable (the driver saw the leader's channel
    close): a follower campaigns at the given time; while the leader lives,
    the other voters' leases refuse its PreVote and no term moves."""
    from raft.config import Config
    from raft.sim import Cluster
    c = Cluster(3, seed=5, config=Config(election_min_ms=2000, election_max_ms=3000))
    lead = c.check_one_leader(20000)
    c.run_for(200)  # every follower has heard it
    term = c.nodes[lead].term
    f1, f2 = [n for n in c.ids if n != lead]
    assert all(c.nodes[n].leader_id == lead for n in (f1, f2))
    # the leader lives: one follower suspects it, nothing changes
    c.disconnect(f1)
    node = c.nodes[f1]
    node.leader_unreachable(c.now + 10)
    c._schedule_tick(f1)
    assert node.election_deadline <= c.now + 10
    c.run_for(50)
    c.connect(f1)
    c.run_for(500)
    assert c.nodes[lead].role == "leader" and all(c.nodes[n].term == term for n in c.ids)
    # the leader is gone: both followers campaign at once, long before a timeout
    c.crash(lead)
    c.run_for(10)  # its last messages in flight land (a closed channel delivers none after)
    for n in (f1, f2):
        c.nodes[n].leader_unreachable(c.now + (10 if n == f1 else 210))
        c._schedule_tick(n)  # the sim ticks at next_deadline(); a driver ticks every 25 ms
    t0 = c.now
    assert c.run_until(lambda: any(c.nodes[n].role == "leader" for n in (f1, f2)), 1000)
    assert c.now - t0 < 300  # the election timeout is 2-3 s
    # a leader, a learner or a node with no leader ignores it
    new = next(n for n in (f1, f2) if c.nodes[n].role == "leader")
    before = c.nodes[new].election_deadline
    c.nodes[new].leader_unreachable(0)
    assert c.nodes[new].role == "leader" and c.nodes[new].election_deadline == before
