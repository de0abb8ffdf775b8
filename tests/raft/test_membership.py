"""Membership changes (single-server, Raft thesis §4.1): one test per rule.
Plain functions (no pytest): they also run under MicroPython and Pyodide
(tests/mpy). Simulator scenarios: test_membership_scenarios.py."""
import json

from raft import Node, codec
from raft.membership import (change_refusal, live_majority_problem, one_change_at_a_time,
                             config_problem, changed_config)
from raft.rng import Rng, seed_from_text
from helpers import config, drain, of_type, Net

ABC = ["a", "b", "c"]


def mk(nid, voters=None, storage=None, **kw):
    # Distinct random streams per id, so elections do not split forever.
    return Node(nid, voters or ABC, config(**kw), Rng(seed_from_text(nid)).random, None, storage, 0)


def cluster(ids=ABC, extra=(), **kw):
    """A Net of nodes bootstrapped with `ids` (+ outsiders `extra`) and an elected leader."""
    net = Net([mk(i, ids, **kw) for i in list(ids) + list(extra)])
    net.run(2000)
    assert net.leader() is not None
    return net


def change(net, nid, cid, seq, op, target, settle_ms=0):
    net.nodes[nid].tick(net.now)
    net.nodes[nid].change_membership(cid, seq, op, target)
    net.pump()
    if settle_ms:
        net.run(net.now + settle_ms)
    return net.result(cid, seq)


def leader_of(net):
    return net.nodes[net.leader()]


# ------------------------------------------------------------------ pure rules
def test_pure_rules_give_reasons():
    assert one_change_at_a_time(5, 4, 2, 2).startswith("the previous membership change (entry 5)")
    assert one_change_at_a_time(3, 4, 1, 2) == "the leader has not committed an entry of its term yet"
    assert one_change_at_a_time(3, 4, 2, 2) is None
    assert live_majority_problem("remove", "2", ["0", "1"], ["0"]) == \
        "removing 2 would leave 1 live voter of 2 (a majority needs 2)"
    assert live_majority_problem("remove", "0", [], ["0"]) == "no voter would be left"
    assert live_majority_problem("promote", "3", ["0", "1", "2", "3"], ["0", "1", "3"]) is None
    assert change_refusal("promote", "4", ["0", "1", "2"], ["4"], ["0", "1", "2", "4"], 120, 5000, 7, 16) == \
        ["unsafe", "learner 4 is not caught up (has 120 of 5000 entries)"]
    assert change_refusal("promote", "4", ["0", "1", "2"], ["4"], ["0", "1", "2"], 5000, 5000, 7, 16) == \
        ["unsafe", "learner 4 has not been heard from recently"]
    assert change_refusal("promote", "4", ["0", "1"], ["4"], ["0", "1", "4"], 9, 9, 2, 16) == \
        ["unsafe", "a cluster has at most 2 voters"]
    assert change_refusal("add_learner", "5", ["0"], ["4"], ["0"], 0, 9, 7, 1) == \
        ["unsafe", "a cluster has at most 1 learners"]
    assert change_refusal("add_learner", "0", ["0"], [], ["0"], 0, 0, 7, 16) == ["invalid", "0 is already a voter"]
    assert change_refusal("add_learner", "4", ["0"], ["4"], ["0"], 0, 0, 7, 16) == ["invalid", "4 is already a learner"]
    assert change_refusal("promote", "0", ["0"], [], ["0"], 0, 0, 7, 16) == ["invalid", "0 is not a learner"]
    assert change_refusal("remove", "9", ["0"], [], ["0"], 0, 0, 7, 16) == ["invalid", "9 is not a member"]
    assert change_refusal("frob", "9", ["0"], [], ["0"], 0, 0, 7, 16)[0] == "invalid"
    # removing a learner never endangers the quorum, even with nobody live
    assert change_refusal("remove", "4", ["0", "1", "2"], ["4"], [], 0, 0, 7, 16) is None
    assert changed_config("promote", "4", ["0", "1"], ["4"]) == (["0", "1", "4"], [])
    assert changed_config("remove", "1", ["0", "1"], ["4"]) == (["0"], ["4"])


def test_config_validation():
    ok = {"voters": ["a", "b"], "learners": ["c"], "by": ["cl", 1]}
    assert config_problem(ok, True) is None
    assert config_problem({"voters": ["a"], "learners": []}, False) is None
    for bad in [None, [], {"voters": ["a"]}, {"voters": [], "learners": [], "by": ["c", 1]},
                {"voters": ["b", "a"], "learners": [], "by": ["c", 1]},
                {"voters": ["a", "a"], "learners": [], "by": ["c", 1]},
                {"voters": ["a"], "learners": ["a"], "by": ["c", 1]},
                {"voters": ["a", 3], "learners": [], "by": ["c", 1]},
                {"voters": ["a"], "learners": [], "by": ["c", 0]},
                {"voters": ["a"], "learners": [], "by": None},
                {"voters": ["a"], "learners": [], "by": ["c", 1], "x": 1}]:
        assert config_problem(bad, True) is not None, bad


# ------------------------------------------------------------------ observable state
def test_outsider_and_bootstrap_observables():
    n = mk("d")
    assert n.membership == "none" and n.voters == ABC and n.learners == []
    assert n.config_index == 0 and n.config_committed and n.quorum == 2
    a = mk("a")
    assert a.membership == "voter" and a.peer_status() == {}


def test_change_takes_effect_when_appended_and_result_when_applied():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    r = change(net, ld.id, "adm", 1, "add_learner", "d")
    assert r == ["adm", 1, None, {"voters": ABC, "learners": ["d"]}], r
    for n in net.nodes.values():
        assert n.learners == ["d"] and n.voters == ABC, n.id
    assert net.nodes["d"].membership == "learner"
    assert net.nodes["d"].commit_index == ld.commit_index     # it caught up
    assert ld.config_committed and ld.config_index == ld.commit_index
    st = ld.peer_status()
    assert st["d"]["voter"] is False and st["d"]["match"] == ld.last_index() and st["d"]["recent"]


def test_change_in_effect_on_leader_before_commit():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    others = [i for i in ABC if i != ld.id]
    net.down.update(others)                          # nothing can commit
    ld.tick(net.now)
    ld.change_membership("adm", 1, "add_learner", "d")
    net.pump()
    assert ld.learners == ["d"] and not ld.config_committed
    assert "d" in ld.progress and net.result("adm", 1) is None
    # a second change waits for the first
    r = change(net, ld.id, "adm", 2, "remove", "d")
    assert r[2] == "conf_pending" and "not committed yet" in r[3], r


def test_conf_pending_until_leader_commits_entry_of_its_term():
    a = mk("a")
    a.tick(1000)
    drain(a)
    for p in ("b", "c"):
        a.step(["pvr", p, "a", a.term + 1, 1])
    drain(a)
    for p in ("b", "c"):
        a.step(["vr", p, "a", a.term, 1])
    drain(a)
    assert a.role == "leader" and a.commit_index == 0
    a.change_membership("adm", 1, "add_learner", "d")
    res = drain(a)[1]
    assert res == [["adm", 1, "conf_pending", "the leader has not committed an entry of its term yet"]]
    assert a.learners == [] and a.pending == {}


def test_unsafe_remove_leaves_no_live_majority():
    net = cluster(ids=["a", "b", "c"])
    ld = leader_of(net)
    others = [i for i in ABC if i != ld.id]
    net.down.add(others[0])
    net.run(net.now + 400)                # > election_min_ms: others[0] is not live
    r = change(net, ld.id, "adm", 1, "remove", others[1])
    assert r == ["adm", 1, "unsafe", "removing %s would leave 1 live voter of 2 (a majority needs 2)"
                 % others[1]], r
    assert ld.voters == ABC and ld.config_index == 0
    # removing the dead one is safe: the two live voters stay a majority of 2
    r = change(net, ld.id, "adm", 2, "remove", others[0])
    assert r[2] is None and r[3]["voters"] == sorted([ld.id, others[1]]), r


def test_unsafe_promote_of_learner_not_caught_up_or_not_heard():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    net.down.add("d")
    assert change(net, ld.id, "adm", 1, "add_learner", "d")[2] is None
    for s in range(2, 5):
        ld.propose("w", s, ["put", "k", s])
    net.pump()
    r = change(net, ld.id, "adm", 5, "promote", "d")
    assert r[2] == "unsafe" and r[3] == "learner d has not been heard from recently", r
    # heard (a heartbeat reply got through), but it has none of the entries
    ld.tick(net.now)
    ld.step(["hr", "d", ld.id, ld.term, 0])
    drain(ld)                                      # (the appends to d are lost)
    r = change(net, ld.id, "adm", 6, "promote", "d")
    assert r[2] == "unsafe" and r[3] == "learner d is not caught up (has 0 of %d entries)" % ld.commit_index, r
    net.down.discard("d")
    net.run(net.now + 200)
    r = change(net, ld.id, "adm", 7, "promote", "d", settle_ms=100)
    assert r[2] is None and r[3] == {"voters": ["a", "b", "c", "d"], "learners": []}, r
    assert net.nodes["d"].membership == "voter" and ld.quorum == 3


def test_invalid_changes_have_reasons_and_change_nothing():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    cases = [("add_learner", "b", "b is already a voter"), ("promote", "b", "b is not a learner"),
             ("remove", "d", "d is not a member"), ("promote", "d", "d is not a learner")]
    seq = 0
    for op, target, why in cases:
        seq += 1
        assert change(net, ld.id, "adm", seq, op, target) == ["adm", seq, "invalid", why]
    # rejected before routing anywhere, also on a follower
    f = [n for n in net.nodes.values() if n.id != ld.id][0]
    for op, target in [("frob", "d"), ("remove", ""), ("remove", 5), (None, "d")]:
        seq += 1
        r = change(net, f.id, "adm", seq, op, target)
        assert r[2] == "invalid" and type(r[3]) is str, r
    f.change_membership("", 1, "remove", "d")
    assert drain(f)[1][0][2] == "invalid"
    assert ld.config_index == 0 and ld.voters == ABC and ld.learners == []


def test_max_voters_and_learners():
    net = cluster(ids=["a", "b", "c"], extra=["d", "e"], max_voters=3, max_learners=1)
    ld = leader_of(net)
    assert change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)[2] is None
    assert change(net, ld.id, "adm", 2, "add_learner", "e") == \
        ["adm", 2, "unsafe", "a cluster has at most 1 learners"]
    assert change(net, ld.id, "adm", 3, "promote", "d") == \
        ["adm", 3, "unsafe", "a cluster has at most 3 voters"]


def test_single_voter_cannot_remove_itself():
    net = cluster(ids=["a"])
    r = change(net, "a", "adm", 1, "remove", "a")
    assert r == ["adm", 1, "unsafe", "no voter would be left"]


# ------------------------------------------------------------------ forwarding
def test_follower_forwards_change_and_gets_result_when_applied():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    f = [n for n in net.nodes.values() if n.id in ABC and n.id != ld.id][0]
    f.tick(net.now)
    f.change_membership("adm", 1, "add_learner", "d")
    msgs = drain(f)[0]
    assert of_type(msgs, "m") == [["m", f.id, ld.id, f.term, "adm", 1, "add_learner", "d"]]
    net.pump(msgs)
    net.run(net.now + 100)
    assert net.result("adm", 1) == ["adm", 1, None, {"voters": ABC, "learners": ["d"]}]
    # refusals travel back as "mr" with the reason
    r = change(net, f.id, "adm", 2, "promote", "b")
    assert r == ["adm", 2, "invalid", "b is not a learner"], r
    # the learner (d) can ask too
    r = change(net, "d", "adm", 3, "remove", "d", settle_ms=100)
    assert r[2] is None and r[3] == {"voters": ABC, "learners": []}, r


def test_change_without_known_leader_fails_no_leader_at_once():
    n = mk("b")
    n.change_membership("adm", 1, "remove", "c")
    assert drain(n)[1] == [["adm", 1, "no_leader", None]]
    # a forwarded request reaching a non-leader is refused the same way
    n.step(["m", "c", "b", 0, "adm", 2, "remove", "c"])
    assert of_type(drain(n)[0], "mr") == [["mr", "b", "c", 0, "adm", 2, "no_leader", None]]


def test_retry_with_same_seq_applies_once_and_returns_original_result():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    assert change(net, ld.id, "adm", 1, "add_learner", "d")[2] is None
    idx = ld.config_index
    net.results = []
    f = [n for n in net.nodes.values() if n.id in ABC and n.id != ld.id][0]
    assert change(net, f.id, "adm", 1, "add_learner", "d") == \
        ["adm", 1, None, {"voters": ABC, "learners": ["d"]}]
    net.results = []
    assert change(net, ld.id, "adm", 1, "add_learner", "d")[2] is None
    assert ld.config_index == idx and ld.stats["membership_changes"] == 1


def test_malformed_membership_messages_are_dropped_and_counted():
    n = mk("a")
    bad = [["m", "b", "a", 1, "adm", 1, "frob", "d"], ["m", "b", "a", 1, "adm", 1, "remove", ""],
           ["m", "b", "a", 1, "", 1, "remove", "d"], ["m", "b", "a", 1, "adm", 0, "remove", "d"],
           ["m", "b", "a", 1, "adm", 1, "remove"], ["mr", "b", "a", 1, "adm", 1, "weird", None],
           ["mr", "b", "a", 1, "adm", 1, None, {"voters": []}], ["mr", "b", "a", 1, "adm", 1, "unsafe", 7],
           ["mr", "b", "a", 1, "adm", 1, "unsafe", "x" * 600],
           ["a", "b", "a", 1, 0, 0, [[1, None, 0, {"voters": ["a"], "learners": ["a"], "by": ["c", 1]}]], 0],
           ["a", "b", "a", 1, 0, 0, [[1, None, 0, {"voters": ["a"], "learners": []}]], 0],
           ["a", "b", "a", 1, 0, 0, [[1, None, 0, "x"]], 0]]
    for m in bad:
        assert codec.problem(m) is not None, m
        n.step(m)
        try:
            codec.decode(codec.encode(m))
            raise AssertionError("decoded %r" % (m,))
        except codec.DecodeError:
            pass
        n.receive(codec.encode(m))
    assert n.stats["dropped_malformed"] == 2 * len(bad)
    assert n.term == 0 and n.log == [[0, None, 0, None]] and drain(n)[0] == []
    good = [["m", "b", "a", 1, "adm", 1, "promote", "d"],
            ["mr", "b", "a", 1, "adm", 1, None, {"voters": ["a"], "learners": []}],
            ["mr", "b", "a", 1, "adm", 1, "conf_pending", "wait"]]
    for m in good:
        assert codec.decode(codec.encode(m)) == m


# ------------------------------------------------------------------ learners do not count
def test_learner_acks_do_not_commit():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    assert change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)[2] is None
    others = [i for i in ABC if i != ld.id]
    net.down.update(others)
    c0 = ld.commit_index
    ld.tick(net.now)
    ld.propose("w", 1, ["put", "k", 1])
    net.pump()
    assert net.nodes["d"].last_index() == ld.last_index()     # the learner has it
    assert ld.commit_index == c0                               # but 2 of 4 is no majority of 3 voters


def test_learners_not_counted_for_read_index_and_check_quorum():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    assert change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)[2] is None
    others = [i for i in ABC if i != ld.id]
    net.down.update(others)
    ld.tick(net.now)
    ld.read_index("r1")
    net.pump()
    net.run(net.now + 100)
    assert [r for r in net.reads if r[1][0] == "r1"] == []      # learner acks do not confirm
    assert ld.role == "leader"
    net.run(net.now + 400)                                    # > election_min_ms
    # the learner was heard all along, yet the leader lost its quorum of voters
    assert ld.role != "leader" and ld.stats["check_quorum_step_down"] == 1
    assert net.nodes["d"].leader_id == ld.id


def test_learner_votes_are_not_counted():
    c = mk("c", ["b", "c", "x"])
    c.tick(1000)
    drain(c)
    assert c.role == "precandidate"
    c.step(["pvr", "d", "c", c.term + 1, 1])                 # not a voter: ignored
    assert c.role == "precandidate" and c.stats["dropped_outsider"] == 1   # not even known
    c.step(["pvr", "b", "c", c.term + 1, 1])
    drain(c)
    assert c.role == "candidate"
    c.step(["vr", "d", "c", c.term, 1])
    assert c.role == "candidate" and c.stats["dropped_outsider"] == 2
    c.step(["vr", "x", "c", c.term, 1])
    drain(c)
    assert c.role == "leader"


def test_learners_and_outsiders_never_campaign():
    out = mk("d")
    for t in range(1, 40):
        out.tick(t * 100)
        msgs = drain(out)[0]
        assert msgs == [] and out.role == "follower" and out.term == 0
    net = cluster(extra=["d"])
    ld = leader_of(net)
    assert change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)[2] is None
    d = net.nodes["d"]
    term = d.term
    net.down.update(ABC)                                      # the learner is alone
    for _ in range(30):
        net.now += 100
        d.tick(net.now)
        assert of_type(drain(d)[0], "pv") == [] and d.role == "follower"
    assert d.term == term and not d.has_quorum


def test_outsider_accepts_leader_appends_and_becomes_learner():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    d = net.nodes["d"]
    assert d.last_index() == 0                               # not replicated to before
    change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)
    assert d.membership == "learner" and d.leader_id == ld.id and d.last_index() == ld.last_index()
    assert d.has_quorum


def test_replies_from_non_members_are_dropped_and_counted():
    net = cluster()
    ld = leader_of(net)
    ld.step(["ar", "zz", ld.id, ld.term, 1, 0, 0, 0])
    ld.step(["hr", "zz", ld.id, ld.term, 0])
    ld.step(["sr", "zz", ld.id, ld.term, 1, 0, 0, 0])
    assert ld.stats["dropped_outsider"] == 3 and ld.role == "leader"   # zz is in no configuration


# ------------------------------------------------------------------ truncation rollback
def test_uncommitted_change_rolled_back_when_truncated():
    f = mk("c")
    conf = {"voters": ["a", "b", "c", "d"], "learners": [], "by": ["adm", 1]}
    f.step(["a", "a", "c", 1, 0, 0, [[1, None, 0, None]], 1])
    f.step(["a", "a", "c", 2, 1, 1, [[2, None, 0, {"voters": ABC, "learners": ["d"], "by": ["adm", 1]}],
                                     [2, None, 0, conf]], 1])
    drain(f)
    assert f.voters == ["a", "b", "c", "d"] and f.config_index == 3 and not f.config_committed
    # a new leader (term 3) never had entry 3: its entry replaces it
    f.step(["a", "b", "c", 3, 2, 2, [[3, None, 0, None]], 1])
    drain(f)
    assert f.log[3][0] == 3
    assert f.voters == ABC and f.learners == ["d"] and f.config_index == 2
    f.step(["a", "b", "c", 4, 1, 1, [[4, None, 0, None]], 1])
    drain(f)
    assert f.learners == [] and f.config_index == 0 and f.membership == "voter"


# ------------------------------------------------------------------ leader removal
def test_removed_leader_leads_uncounted_then_steps_down_and_never_campaigns():
    net = cluster()
    ld = leader_of(net)
    others = [i for i in ABC if i != ld.id]
    net.down.add(others[0])
    ld.tick(net.now)
    ld.change_membership("adm", 1, "remove", ld.id)
    net.pump()
    # needs both remaining voters; the leader's own copy does not count
    assert ld.role == "leader" and ld.membership == "none" and ld.quorum == 2
    assert not ld.config_committed and net.result("adm", 1) is None
    assert ld.progress[others[1]].match == ld.last_index()
    ld.propose("w", 1, ["put", "k", 1])               # it still serves while leading
    net.pump()
    net.down.discard(others[0])
    net.run(net.now + 100)
    assert net.result("adm", 1) == ["adm", 1, None, {"voters": others, "learners": []}]
    assert ld.role == "follower" and ld.stats["removed_leader_step_down"] == 1
    assert net.result("w", 1)[2] in (None, "leadership_lost")
    net.run(net.now + 2000)
    new = leader_of(net)
    assert new.id in others and new.voters == others and ld.term <= new.term
    term = ld.term
    for _ in range(20):
        net.now += 100
        ld.tick(net.now)
        assert of_type(drain(ld)[0], "pv") == []
    assert ld.term == term and "pv" not in [m[0] for m in drain(ld)[0]]


# ------------------------------------------------------------------ grow / shrink
def test_one_voter_cluster_grows_to_three_and_shrinks_back():
    net = cluster(ids=["a"], extra=["b", "c"])
    a = net.nodes["a"]
    seq = 0
    for op, t in [("add_learner", "b"), ("promote", "b"), ("add_learner", "c"), ("promote", "c")]:
        seq += 1
        r = change(net, "a", "adm", seq, op, t, settle_ms=60)
        assert r[2] is None, r
    assert a.voters == ABC and a.quorum == 2
    for n in net.nodes.values():
        assert n.voters == ABC and n.membership == "voter"
    a.propose("w", 1, ["put", "x", 1])
    net.pump()
    net.run(net.now + 30)                # the commit index reaches followers
    assert net.result("w", 1)[2] is None and net.nodes["c"].state_machine.data["x"] == 1
    for op, t in [("remove", "c"), ("remove", "b")]:
        seq += 1
        r = change(net, "a", "adm", seq, op, t, settle_ms=60)
        assert r[2] is None, r
    assert a.voters == ["a"] and a.quorum == 1 and a.role == "leader"
    net.down.update(["b", "c"])
    a.propose("w", 2, ["put", "x", 2])
    net.pump()
    assert net.result("w", 2)[2] is None                     # commits alone again
    assert net.nodes["b"].membership == "none"


# ------------------------------------------------------------------ persistence
def test_config_recomputed_from_log_on_restart():
    net = cluster(extra=["d"])
    ld = leader_of(net)
    change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)
    change(net, ld.id, "adm", 2, "promote", "d", settle_ms=50)
    for nid in ["a", "d"]:
        st = net.stores[nid].storage()
        n2 = mk(nid, ABC, json.loads(json.dumps(st)))
        assert n2.voters == ["a", "b", "c", "d"] and n2.membership == "voter", nid
        assert n2.config_index == net.nodes[nid].config_index
        assert n2.quorum == 3


def _snapshot_net():
    net = Net([mk(i, ABC, snapshot_entries=8) for i in ABC] + [mk("d", ABC, snapshot_entries=8)])
    net.run(2000)
    return net


def test_snapshot_carries_config_and_install_adopts_it():
    net = _snapshot_net()
    ld = leader_of(net)
    net.down.add("d")
    assert change(net, ld.id, "adm", 1, "add_learner", "d")[2] is None
    for s in range(1, 30):
        ld.propose("w", s, ["put", "k", s])
        net.pump()
    assert ld.snapshot is not None
    assert ld.snapshot[2]["config"] == {"voters": ABC, "learners": ["d"]}
    assert ld.config_index == 0 and ld.learners == ["d"]     # covered by the snapshot now
    # the learner, far behind, gets the snapshot and adopts its configuration
    net.down.discard("d")
    net.run(net.now + 300)
    d = net.nodes["d"]
    assert d.stats.get("snapshots_installed", 0) == 1 and d.membership == "learner"
    assert d.learners == ["d"] and d.commit_index == ld.commit_index
    r = change(net, ld.id, "adm", 2, "promote", "d", settle_ms=60)
    assert r[2] is None and d.membership == "voter"


def test_config_survives_restart_from_snapshot():
    net = _snapshot_net()
    ld = leader_of(net)
    assert change(net, ld.id, "adm", 1, "add_learner", "d", settle_ms=50)[2] is None
    for s in range(1, 30):
        ld.propose("w", s, ["put", "k", s])
        net.pump()
    # persist the leader's state as a driver would: snapshot + tail + hard state
    snap = ld.snapshot
    tail = ld.log[1:]
    n2 = mk(ld.id, ABC, json.loads(json.dumps([[ld.term, ld.vote, ld.commit_index], tail, snap])),
            snapshot_entries=8)
    assert n2.learners == ["d"] and n2.voters == ABC and n2.offset == snap[0]
    assert n2.config_index == 0 and n2.membership == "voter"
    # a damaged configuration in a persisted snapshot is refused clearly
    bad = json.loads(json.dumps(snap))
    bad[2]["config"] = {"voters": [], "learners": []}
    try:
        mk(ld.id, ABC, [[ld.term, ld.vote, ld.commit_index], [], bad])
        raise AssertionError("accepted")
    except ValueError as e:
        assert "configuration" in str(e)


def test_installed_snapshot_with_bad_config_is_dropped():
    f = mk("c")
    data = {"sm": {}, "sessions": [], "index": 3, "config": {"voters": ["a", "a"], "learners": []}}
    f.step(["s", "a", "c", 1, 3, 1, 0, json.dumps(data), 1])
    assert f.stats["dropped_bad_snapshot"] == 1 and f.commit_index == 0 and f.voters == ABC


def test_node_that_missed_its_removal_is_caught_up_when_it_campaigns():
    net = cluster()
    ld = leader_of(net)
    f = [i for i in ABC if i != ld.id][0]
    net.down.add(f)                                # away while removed
    assert change(net, ld.id, "adm", 1, "remove", f)[2] is None
    net.run(net.now + 400)                         # past the leader's grace period
    assert f not in ld.progress and net.nodes[f].membership == "voter"
    term = ld.term
    net.down.discard(f)
    net.run(net.now + 1000)                        # it times out and pre-votes
    assert ld.stats["stray_caught_up"] == 1 and ld.term == term and ld.role == "leader"
    fn = net.nodes[f]
    assert fn.membership == "none" and fn.voters == sorted(i for i in ABC if i != f)
    assert fn.commit_index == ld.commit_index
    net.run(net.now + 1000)
    assert f not in ld.progress and ld.term == term
    sent = []
    for _ in range(20):
        net.now += 100
        fn.tick(net.now)
        sent.extend(of_type(drain(fn)[0], "pv"))
    assert sent == [] and fn.term <= term
