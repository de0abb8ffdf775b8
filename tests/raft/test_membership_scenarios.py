"""Membership changes in the simulator, over seeds (WRAFT_SEEDS, as in
test_scenarios.py). Besides the usual invariants (election safety per term,
log matching, leader completeness, state machine safety, exactly-once), the
simulator checks after every event that no leader holds more than one
uncommitted configuration entry, that consecutive committed configurations
differ by at most one voter, and that no change request commits twice."""
from raft.sim import Cluster, InvariantError
from test_scenarios import over_seeds, ELECTION
from test_snapshots import snap_config


def admin_change(c, cl, op, target, max_ms=20000, retry_unsafe=True, made_ok=True):
    """One membership change through client cl (the Client retries the same
    seq on no_leader/timeout/conf_pending); a refusal as 'unsafe' (learner
    still catching up, voter not live yet) is asked again with a new seq.
    Returns [op, target, error, value]."""
    assert cl.idle()
    end = c.now + max_ms
    while True:
        cl.change(op, target)
        seq = cl.seq
        if not c.run_until(lambda: seq in cl.changes, max(1, end - c.now)):
            raise InvariantError("%s %s: no outcome within %d ms (seed %d)" % (op, target, max_ms, c.seed))
        out = cl.changes[seq]
        if out[2] == "unsafe" and retry_unsafe and c.now < end:
            c.run_for(ELECTION // 3)
            continue
        if out[2] == "invalid" and made_ok and seq > 1 and _made(c, op, target):
            # A refusal is not sticky: a delayed copy of an earlier request
            # (a duplicate, or a retry of a seq refused as unsafe) made the
            # change after all (raft/API.md, Membership).
            ld = c.nodes[c.known_leader()]
            return [op, target, None, {"voters": ld.voters, "learners": ld.learners}]
        return out


def _made(c, op, target):
    lid = c.known_leader()
    if lid is None:
        return False
    n = c.nodes[lid]
    if op == "add_learner":
        return target in n.learners
    if op == "promote":
        return target in n.voters
    return target not in n.voters and target not in n.learners


def must_change(c, cl, op, target, max_ms=20000):
    out = admin_change(c, cl, op, target, max_ms)
    assert out[2] is None, out
    return out[3]


def writer(c, cid, n):
    cl = c.client(cid)
    for i in range(n):
        cl.submit(["put", "k%d" % (i % 5), "%s:%d" % (cid, i)])
    return cl


def agree(c, ids, voters=None):
    """Every node in ids has applied everything and holds the same configuration."""
    top = len(c.committed) - 1
    first = c.nodes[ids[0]]
    for i in ids:
        n = c.nodes[i]
        if n is None or n.applied_index < top or n.voters != first.voters or n.learners != first.learners:
            return False
    return voters is None or first.voters == voters


def finish(c, cls, members, voters=None, max_ms=30000):
    assert c.run_until(lambda: all(cl.idle() for cl in cls), max_ms), "clients stuck"
    c.one(["put", "end", c.now], len(members), max_ms=max_ms, cid="end")
    assert c.run_until(lambda: agree(c, members, voters), max_ms), "members disagree"
    c.check_exactly_once()


# ------------------------------------------------------------------ scenarios
def test_add_learner_and_promote_on_unreliable_network():
    def run(seed):
        c = Cluster(3, seed, delay=(1, 10), drop=0.1, dup=0.05, reorder=0.1)
        c.check_one_leader()
        c.add_node("n3")
        w = writer(c, "w", 20)
        adm = c.client("adm")
        assert must_change(c, adm, "add_learner", "n3") == {"voters": ["n0", "n1", "n2"], "learners": ["n3"]}
        assert must_change(c, adm, "promote", "n3")["voters"] == ["n0", "n1", "n2", "n3"]
        finish(c, [w], ["n0", "n1", "n2", "n3"], ["n0", "n1", "n2", "n3"])
        assert c.nodes["n3"].membership == "voter"
    over_seeds("add_learner_and_promote_on_unreliable_network", run)


def test_random_changes_under_partitions_and_crashes():
    def run(seed):
        # odd seeds: nodes also crash between persisting a Ready and sending it
        c = Cluster(5, seed, delay=(1, 10), drop=0.02, crash_mid_ready=0.004 * (seed % 2))
        c.check_one_leader()
        for x in ("n5", "n6"):
            c.add_node(x)
        w = writer(c, "w", 40)
        adm = c.client("adm")
        rng = c.rng
        outcomes = []
        for _ in range(6):
            # a fault: a minority partitioned away, or a node crashed
            kind = rng.randint(0, 2)
            if kind == 0:
                cut = rng.choice(c.ids)
                c.disconnect(cut)
            elif kind == 1:
                c.crash(rng.choice(c.ids))
            ref = c.nodes[c.known_leader() or c.alive()[0]]
            voters, learners = ref.voters, ref.learners
            outsiders = [i for i in c.ids if i not in voters and i not in learners]
            if learners and rng.chance(0.6):
                op, target = "promote", rng.choice(learners)
            elif len(voters) > 3 and rng.chance(0.5):
                op, target = "remove", rng.choice(voters)
            elif outsiders and len(learners) < 2:
                op, target = "add_learner", rng.choice(outsiders)
            else:
                op, target = "remove", rng.choice(learners or voters)
            try:
                out = admin_change(c, adm, op, target, max_ms=3000, retry_unsafe=False,
                                   made_ok=False)
                outcomes.append(out[2])
            except InvariantError:
                outcomes.append("stuck")       # faults may stall it: heal below
            c.heal()
            for i in c.ids:
                c.restart(i)
            c.run_until(adm.idle, 20000)
            c.run_for(rng.randint(0, ELECTION))
        c.heal()
        for i in c.ids:
            c.restart(i)
        leader = c.check_one_leader()
        members = sorted(c.nodes[leader].voters + c.nodes[leader].learners)
        finish(c, [w, adm], members)
        # every acknowledged change was committed (once: the simulator checks)
        assert len(c.conf_by) >= outcomes.count(None) >= 3, outcomes
    over_seeds("random_changes_under_partitions_and_crashes", run)


def test_new_node_crash_during_promotion():
    def run(seed):
        c = Cluster(3, seed, delay=(1, 10))
        c.check_one_leader()
        c.add_node("n3")
        adm = c.client("adm")
        must_change(c, adm, "add_learner", "n3")
        assert c.run_until(lambda: c.nodes["n3"].commit_index >= c.nodes[c.known_leader()].commit_index, 5000)
        c.crash("n3")
        c.run_for(2 * ELECTION)
        out = admin_change(c, adm, "promote", "n3", retry_unsafe=False)
        assert out[2] == "unsafe" and out[3] == "learner n3 has not been heard from recently", out
        c.restart("n3")
        assert must_change(c, adm, "promote", "n3")["voters"] == ["n0", "n1", "n2", "n3"]
        # crash it again as a voter: 3 of 4 still commit
        c.crash("n3")
        w = writer(c, "w", 10)
        c.restart("n3")
        finish(c, [w], ["n0", "n1", "n2", "n3"], ["n0", "n1", "n2", "n3"])
    over_seeds("new_node_crash_during_promotion", run)


def test_leader_crash_right_after_appending_a_config_entry():
    def run(seed):
        c = Cluster(3, seed, delay=(1, 10))
        l1 = c.check_one_leader()
        c.add_node("n3")
        c.one(["put", "a", 1], 3)
        lost = seed % 2 == 0
        if lost:
            c.disconnect(l1)            # the entry never leaves the leader
        c.change_membership(l1, "adm", 1, "add_learner", "n3")
        assert c.nodes[l1].learners == ["n3"] and not c.nodes[l1].config_committed
        c.crash(l1)
        c.connect(l1)
        c.check_one_leader()
        # the client retries the SAME request (adm, 1) through the new leader
        adm = c.client("adm")
        w = writer(c, "w", 10)
        assert must_change(c, adm, "add_learner", "n3") == {"voters": ["n0", "n1", "n2"], "learners": ["n3"]}
        assert adm.seq == 1
        c.restart(l1)                   # its uncommitted tail, if different, is replaced
        finish(c, [w], ["n0", "n1", "n2", "n3"], ["n0", "n1", "n2"])
        assert list(c.conf_by) == [("adm", 1)]
    over_seeds("leader_crash_right_after_appending_a_config_entry", run)


def test_leader_removes_itself_and_steps_down():
    def run(seed):
        c = Cluster(3, seed, delay=(1, 10))
        l1 = c.check_one_leader()
        w = writer(c, "w", 30)
        adm = c.client("adm")
        rest = [i for i in c.ids if i != l1]
        assert must_change(c, adm, "remove", l1)["voters"] == rest
        assert c.run_until(lambda: c.nodes[l1].role != "leader", 2000)
        assert c.nodes[l1].stats["removed_leader_step_down"] == 1
        l2 = c.check_one_leader()
        assert l2 in rest
        term = c.nodes[l1].term
        c.run_for(10 * ELECTION)
        assert c.nodes[l1].term == term and c.nodes[l1].role == "follower"
        assert c.stable_leader() == l2
        finish(c, [w], rest, rest)
    over_seeds("leader_removes_itself_and_steps_down", run)


def test_grow_three_to_five_and_shrink_back_while_writing():
    def run(seed):
        c = Cluster(3, seed, delay=(1, 10), drop=0.02)
        c.check_one_leader()
        for x in ("n3", "n4"):
            c.add_node(x)
        w = writer(c, "w", 200)
        adm = c.client("adm")
        for x in ("n3", "n4"):
            must_change(c, adm, "add_learner", x)
            must_change(c, adm, "promote", x)
        five = ["n0", "n1", "n2", "n3", "n4"]
        assert c.nodes[c.known_leader()].voters == five
        assert not w.idle()                   # writes went on during the changes
        # shrink back, removing two of the original voters (maybe the leader)
        gone = [c.rng.choice(["n0", "n1", "n2"])]
        gone.append(c.rng.choice([x for x in ["n0", "n1", "n2"] if x not in gone]))
        for x in gone:
            must_change(c, adm, "remove", x)
        three = [x for x in five if x not in gone]
        finish(c, [w], three, three)
        assert len(w.acked) == 200
        for x in gone:
            assert c.nodes[x].membership == "none"
    over_seeds("grow_three_to_five_and_shrink_back_while_writing", run)


def test_far_behind_learner_catches_up_by_snapshot_before_promotion():
    def run(seed):
        c = Cluster(3, seed, config=snap_config(), delay=(1, 10))
        c.check_one_leader()
        c.add_node("n3")
        c.disconnect("n3")
        adm = c.client("adm")
        must_change(c, adm, "add_learner", "n3")
        w = writer(c, "w", 80)
        assert c.run_until(w.idle, 30000)
        assert c.nodes[c.known_leader()].offset > 0          # compacted past n3's log
        out = admin_change(c, adm, "promote", "n3", retry_unsafe=False)
        assert out[2] == "unsafe", out
        c.connect("n3")
        must_change(c, adm, "promote", "n3")
        assert c.nodes["n3"].stats.get("snapshots_installed", 0) >= 1
        finish(c, [], ["n0", "n1", "n2", "n3"], ["n0", "n1", "n2", "n3"])
    over_seeds("far_behind_learner_catches_up_by_snapshot_before_promotion", run)


def test_removed_node_restarted_does_not_disrupt():
    def run(seed):
        c = Cluster(3, seed, delay=(1, 10))
        leader = c.check_one_leader()
        f = [i for i in c.ids if i != leader][0]
        knows = seed % 2 == 0
        if not knows:
            c.disconnect(f)             # removed while away: its log never learns it
        adm = c.client("adm")
        rest = [i for i in c.ids if i != f]
        must_change(c, adm, "remove", f)
        if knows:
            assert c.run_until(lambda: c.nodes[f].membership == "none", 2000)
        c.crash(f)
        c.connect(f)
        c.restart(f)
        assert (c.nodes[f].membership == "none") == knows
        l2 = c.check_one_leader()
        term = c.nodes[l2].term
        w = writer(c, "w", 20)
        c.run_for(10 * ELECTION)
        assert c.stable_leader() == l2 and c.nodes[l2].term == term
        finish(c, [w], rest, rest)
        assert c.nodes[l2].term == term
        # one that missed its removal campaigns once; the leader then sends
        # it the log, so it learns it and goes quiet
        # (the leader's grace replication or its stray catch-up told it)
        assert c.nodes[f].membership == "none" and c.nodes[f].role == "follower"
        sent = []
        c.tap = lambda m: sent.append(m) if m[1] == f and m[0] in ("pv", "v") else None
        c.run_for(10 * ELECTION)
        assert sent == [] and c.nodes[l2].term == term
    over_seeds("removed_node_restarted_does_not_disrupt", run)
