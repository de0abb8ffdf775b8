"""Log compaction in the simulator, over seeds (WRAFT_SEEDS, as in
test_scenarios.py): the simulator checks every Raft invariant after each
event (indexes below a snapshot count as matching it) and checks every
persisted snapshot: only committed entries, the committed term, and a state
equal to replaying the commands it records."""
from raft.sim import Cluster
from test_scenarios import over_seeds, ELECTION
from test_snapshots import snap_config


def _clients_write(c, n_clients, per_client, prefix="w"):
    cls = []
    for k in range(n_clients):
        cl = c.client("%s%d" % (prefix, k))
        for i in range(per_client):
            cl.submit(["put", "k%d" % (i % 7), "%s%d:%d" % (prefix, k, i)])
        cls.append(cl)
    return cls


def _converged(c, among=None):
    top = len(c.committed) - 1
    alive = among or c.alive()
    data = None
    for i in alive:
        n = c.nodes[i]
        if n.applied_index < top:
            return False
        if data is None:
            data = n.state_machine.data
        elif n.state_machine.data != data:
            return False
    return True


def _write_and_converge(c, cls, max_ms=60000, among=None):
    assert c.run_until(lambda: all(cl.idle() for cl in cls), max_ms), "clients stuck"
    c.one(["put", "end", len(c.committed)], len(among or c.alive()), max_ms=max_ms, cid="end")
    assert c.run_until(lambda: _converged(c, among), max_ms), "no convergence"
    c.check_exactly_once()


def test_snapshots_no_faults():
    def run(seed):
        c = Cluster(3, seed, config=snap_config())
        c.check_one_leader()
        _write_and_converge(c, _clients_write(c, 3, 40))
        for i in c.ids:
            n = c.nodes[i]
            assert n.stats.get("snapshots_taken", 0) >= 2, (i, n.stats)
            assert n.last_index() - n.offset <= 2 * 20 + 10   # bounded log in memory
            assert len(c.store[i][1]) <= 2 * 20 + 10           # and in storage
    over_seeds("snapshots_no_faults", run)


def test_snapshots_disconnected_follower_installs():
    def run(seed):
        c = Cluster(3, seed, config=snap_config())
        leader = c.check_one_leader()
        f = [i for i in c.ids if i != leader][0]
        c.disconnect(f)
        _write_and_converge(c, _clients_write(c, 2, 50), among=[i for i in c.ids if i != f])
        c.connect(f)
        c.one(["put", "back", 1], 3, max_ms=20000, cid="back")
        assert c.run_until(lambda: _converged(c), 20000)
        assert c.nodes[f].stats.get("snapshots_installed", 0) >= 1
        c.check_exactly_once()
    over_seeds("snapshots_disconnected_follower_installs", run)


def test_snapshots_unreliable_network():
    def run(seed):
        c = Cluster(5, seed, config=snap_config(), delay=(1, 20), drop=0.1, dup=0.1,
                    reorder=0.1)
        leader = c.check_one_leader()
        f = [i for i in c.ids if i != leader][1]
        c.disconnect(f)
        cls = _clients_write(c, 3, 40)
        c.run_for(3 * ELECTION)
        c.connect(f)              # rejoins mid-stream over the lossy network
        _write_and_converge(c, cls, max_ms=120000)
        assert sum(c.nodes[i].stats.get("snapshots_installed", 0) for i in c.ids) >= 1
    over_seeds("snapshots_unreliable_network", run)


def test_snapshots_crash_all_nodes_twice_in_a_row():
    def run(seed):
        c = Cluster(3, seed, config=snap_config())
        _write_and_converge(c, _clients_write(c, 2, 30, "a"))
        state = dict(c.nodes[c.ids[0]].state_machine.data)
        for _ in range(2):
            for i in c.ids:
                c.crash(i)
            for i in c.ids:
                assert c.store[i][2] is not None     # each restarts from a snapshot
                c.restart(i)
                n = c.nodes[i]
                assert n.offset == c.store[i][2][0] > 0
        c.run_until(lambda: _converged(c), 10000)
        assert c.nodes[c.ids[0]].state_machine.data == state   # committed state identical
        _write_and_converge(c, _clients_write(c, 2, 30, "b"))
    over_seeds("snapshots_crash_all_twice", run)


def test_snapshots_crashes_mid_ready():
    def run(seed):
        c = Cluster(3, seed, config=snap_config(), crash_mid_ready=0.02)
        _write_and_converge(c, _clients_write(c, 3, 30), max_ms=120000)
    over_seeds("snapshots_crashes_mid_ready", run)


def test_snapshots_follower_far_behind_after_partition():
    def run(seed):
        c = Cluster(5, seed, config=snap_config())
        old = c.check_one_leader()
        rest = [i for i in c.ids if i != old]
        minority = [old, rest[0]]
        majority = rest[1:]
        c.partition([minority, majority])
        # the old leader takes writes it can never commit (they will conflict)
        for s in range(1, 6):
            c.propose(old, "stale", s, ["put", "stale", s])
        _write_and_converge(c, _clients_write(c, 3, 50), among=majority)
        c.heal()
        c.one(["put", "healed", 1], 5, max_ms=30000, cid="healed")
        assert c.run_until(lambda: _converged(c), 30000)
        for i in minority:
            n = c.nodes[i]
            assert n.stats.get("snapshots_installed", 0) >= 1
            assert "stale" not in n.state_machine.data
        c.check_exactly_once()
    over_seeds("snapshots_far_behind_after_partition", run)


def test_snapshots_by_bytes_with_follower_restart():
    def run(seed):
        # byte threshold only; values of varied size
        c = Cluster(3, seed, config=snap_config(entries=0, nbytes=2500))
        leader = c.check_one_leader()
        f = [i for i in c.ids if i != leader][0]
        cl = c.client("big")
        for i in range(80):
            cl.submit(["put", "k%d" % (i % 5), "%d:%s" % (i, "x" * (i % 40))])
        c.run_until(lambda: c.alive() and len(c.committed) > 30, 20000)
        c.crash(f)
        assert c.run_until(cl.idle, 60000)
        c.restart(f)
        c.one(["put", "after", seed], 3, max_ms=20000, cid="after")
        assert c.run_until(lambda: _converged(c), 20000)
        for i in c.ids:
            assert c.nodes[i].stats.get("snapshots_taken", 0) + \
                c.nodes[i].stats.get("snapshots_installed", 0) >= 1
        c.check_exactly_once()
    over_seeds("snapshots_by_bytes_with_follower_restart", run)
