"""Linearizability of the key/value service the core provides, checked on
histories of concurrent clients in the simulator (tests/raft/kv_workload.py)
under partitions, crashes (also between persist and send), loss,
duplication, reordering, leader isolation, tiny snapshot thresholds and
membership changes; plus liveness once the faults stop. The checker itself
(tests/raft/linearizability.py) is checked against brute force, and the
driver against known bugs injected into the core: each must be caught.

Seeds: WRAFT_SEEDS=N (default 30) runs seeds 1..N; WRAFT_SEED=S runs one.
"""
import itertools
import os

import pytest

from linearizability import check, check_key, step, _NO
from kv_workload import Workload, PROFILES
from raft import node as node_mod
from raft.codec import read_reply
from raft.roles import LEADER
from raft.rng import Rng
from raft.sessions import Sessions
from raft.sim import InvariantError

N_SEEDS = int(os.environ.get("WRAFT_SEEDS", "30"))
ONE_SEED = os.environ.get("WRAFT_SEED")
FIRST_SEED = int(os.environ.get("WRAFT_FIRST_SEED", "1"))


# ------------------------------------------------------------------ the checker
def test_checker_accepts_and_rejects_small_histories():
    put1 = ["put", "k", [1], None, 0, 1]
    assert check([put1, ["get", "k", [], 1, 2, 3]]) is None
    assert check([put1, ["put", "k", [2], 1, 2, 3], ["read", "k", [], 1, 4, 5]]) is not None
    # concurrent with the put: either value, but never back once the new one was seen
    slow = ["put", "k", [1], None, 0, 10]
    assert check([slow, ["read", "k", [], None, 2, 3], ["read", "k", [], 1, 4, 5]]) is None
    assert check([slow, ["read", "k", [], 1, 2, 3], ["read", "k", [], None, 4, 5]]) is not None
    # an operation with unknown outcome may take effect late, or never
    lost = ["put", "k", [1], None, 0, None]
    assert check([lost, ["read", "k", [], None, 5, 6], ["read", "k", [], 1, 7, 8]]) is None
    assert check([lost, ["read", "k", [], 1, 5, 6], ["read", "k", [], None, 7, 8]]) is not None
    assert check([lost, ["read", "k", [], None, 5, 6]]) is None
    cas = ["cas", "k", [None, 5], [True, 5], 0, 1]
    assert check([cas, ["del", "k", [], True, 2, 3], ["read", "k", [], None, 4, 5]]) is None
    assert check([cas, ["del", "k", [], False, 2, 3]]) is not None
    assert check([["cas", "k", [3, 4], [False, None], 0, 1]]) is None
    # keys are independent; the report names the key and its operations
    v = check([put1, ["put", "j", [7], None, 0, 1], ["read", "j", [], None, 5, 6]])
    assert v is not None and "'j'" in str(v) and "read() -> None" in str(v)


def _brute_force(ops):
    """Linearizable iff some order of a subset (every known op, any unknown
    ones) respects real time and the model."""
    known = [o for o in ops if o[5] is not None]
    unknown = [o for o in ops if o[5] is None]
    for r in range(len(unknown) + 1):
        for extra in itertools.combinations(unknown, r):
            chosen = known + list(extra)
            for order in itertools.permutations(chosen):
                ok = True
                for a in range(len(order)):
                    for b in range(a + 1, len(order)):
                        later = order[b]
                        if later[5] is not None and later[5] < order[a][4]:
                            ok = False          # b returned before a was called
                if not ok:
                    continue
                state = None
                for o in order:
                    state = step(state, o[0], o[2], o[3], o[5] is not None)
                    if state is _NO:
                        break
                if state is not _NO:
                    return True
    return False


def test_checker_agrees_with_brute_force_on_random_histories():
    rng = Rng(12345)
    disagreements = 0
    verdicts = set()
    for _ in range(400):
        ops = []
        for _ in range(rng.randint(1, 5)):
            call = rng.randint(0, 20)
            ret = None if rng.chance(0.2) else call + rng.randint(0, 8)
            kind = rng.choice(["put", "get", "del", "cas", "read"])
            val = lambda: rng.choice([None, 1, 2])
            if kind == "put":
                op = ["put", "k", [rng.choice([1, 2])], val()]
            elif kind == "cas":
                old, new = val(), rng.choice([1, 2])
                op = ["cas", "k", [old, new], rng.choice([[True, new], [False, val()]])]
            elif kind == "del":
                op = ["del", "k", [], rng.chance(0.5)]
            else:
                op = [kind, "k", [], val()]
            ops.append(op + [call, ret])
        got = check_key(ops)
        verdicts.add(got)
        if got != _brute_force(ops):
            disagreements += 1
    assert disagreements == 0
    assert verdicts == {True, False}      # both outcomes were exercised


# ------------------------------------------------------------------ the driver
def _seeds():
    return [int(ONE_SEED)] if ONE_SEED else range(FIRST_SEED, FIRST_SEED + N_SEEDS)


def _run(seed, **kw):
    w = Workload(seed, **kw)
    w.run()
    return w, check(w.history)


def test_histories_are_linearizable_and_members_converge_under_faults():
    stats = {"ops": 0, "reads": 0, "unknown": 0, "profiles": set(), "membership": 0,
             "snapshots": 0}
    for seed in _seeds():
        try:
            w, violation = _run(seed)
        except Exception as e:
            raise AssertionError("seed %d: %s: %s\nreplay: WRAFT_SEED=%d .venv/bin/pytest "
                                 "tests/raft/test_linearizability.py -k converge"
                                 % (seed, type(e).__name__, e, seed))
        if violation is not None:
            raise AssertionError("seed %d: %s\nreplay: WRAFT_SEED=%d .venv/bin/pytest "
                                 "tests/raft/test_linearizability.py -k converge"
                                 % (seed, violation, seed))
        stats["ops"] += len(w.history)
        stats["reads"] += sum(1 for o in w.history if o[0] == "read")
        stats["unknown"] += sum(1 for o in w.history if o[5] is None)
        stats["profiles"].add(w.profile)
        stats["membership"] += 1 if w.membership else 0
        stats["snapshots"] += sum(n.stats.get("snapshots_installed", 0)
                                  for n in w.c.nodes.values() if n is not None)
    if N_SEEDS >= 20 and not ONE_SEED:
        # The runs really exercised what they claim to.
        assert stats["profiles"] == set(PROFILES) and stats["membership"] > 0, stats
        assert stats["reads"] > 1000 and stats["unknown"] > 0 and stats["snapshots"] > 0, stats


# ------------------------------------------------------------------ known bugs are caught
def _caught(max_seeds, **kw):
    """The first seed whose history is not linearizable (or breaks an
    invariant), or None."""
    for seed in range(1, max_seeds + 1):
        try:
            w, violation = _run(seed, **kw)
        except InvariantError:
            return seed
        if violation is not None:
            return seed
    return None


def test_followers_answering_reads_locally_are_caught(monkeypatch):
    original = node_mod.Node.read_index

    def local(self, ctx):
        if self.role != LEADER:
            self.reads_out.append([ctx, None])       # no ReadIndex: whatever it has applied
            return
        original(self, ctx)
    monkeypatch.setattr(node_mod.Node, "read_index", local)
    assert _caught(5) is not None


def test_sessions_off_is_caught(monkeypatch):
    def every_time(self, client, seq, command, state_machine, *where):
        return None, state_machine.apply(command)   # retries applied again
    monkeypatch.setattr(Sessions, "apply", every_time)
    assert _caught(10) is not None


def test_leader_reading_without_its_heartbeat_round_is_caught(monkeypatch):
    def no_round(self, rid, origin, deadline):
        if origin == self.id:
            self.local_reads.append([rid, self.commit_index])
            self._release_local_reads()
        else:
            self.msgs.append(read_reply(self.id, origin, self.term, rid, self.commit_index, None))
    monkeypatch.setattr(node_mod.Node, "_start_leader_read", no_round)
    # A cut-off leader that does not step down (no CheckQuorum lease) keeps
    # serving reads while another leader commits writes.
    assert _caught(10, profile="isolation", check_quorum=False) is not None


def test_new_leader_reading_before_its_noop_commits_is_caught(monkeypatch):
    def no_wait(self, rid, origin, deadline):
        self._start_leader_read(rid, origin, deadline)
    monkeypatch.setattr(node_mod.Node, "leader_read_request", no_wait)
    # Leader changes right after commits: the new leader's commit index lags.
    assert _caught(15, profile="isolation", writers=6, ops_per_writer=60, n=3,
                   readers=4) is not None
