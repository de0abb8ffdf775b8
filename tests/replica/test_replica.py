"""`python -m raft.replica` processes in CPython, among themselves (no
browser): ICE host candidates on loopback, a real `python -m signaling`.

A cluster of three replicas elects, writes, survives SIGKILL and restart;
a fourth joins as learner and is promoted from another's stdin; Ctrl-C
stops cleanly and the SQLite file restarts it; and each kind of bad input
(wrong secret, corrupt file, full disk, introducer down) ends with a clear
message and its exit code, losing nothing."""

import hashlib
import threading

from raft.cluster_key import client_key
from raft.replica.storage import open_records
from replica_helpers import ReplicaProc, run_client, wait_until

KV = "raft.kv:KVStateMachine"


def leader_of(reps):
    infos = {r.node: r.status() for r in reps}
    leads = [n for n, i in infos.items() if i["role"] == "leader"]
    if len(leads) == 1 and all(i["leader"] == leads[0] and i["quorum"] for i in infos.values()):
        return leads[0]
    return None


def start_cluster(signaling, tmp_path, cluster, nodes=("0", "1", "2"), state=KV):
    reps = [ReplicaProc(signaling.ws, cluster, n, tmp_path / ("r%s.sqlite" % n), state=state)
            for n in nodes]
    try:
        lead = wait_until(lambda: leader_of(reps), timeout=40, what="a leader")
    except AssertionError:
        for r in reps:
            print("--- replica %s ---\n%s" % (r.node, r.stderr()))
        raise
    return reps, lead


def test_three_replicas_write_survive_sigkill_and_grow_by_a_promoted_learner(signaling, tmp_path):
    reps, lead = start_cluster(signaling, tmp_path, "kv3")
    by = {r.node: r for r in reps}
    try:
        follower = next(r for r in reps if r.node != lead)
        assert follower.command('propose ["put", "a", 1]') == \
            {"ok": None, "command": 'propose ["put", "a", 1]'}
        assert by[lead].command('propose ["put", "a", 2]')["ok"] == 1  # the previous value
        # Writes go on from the leader while a follower is killed and restarted.
        victim = next(r for r in reps if r.node not in (lead, follower.node))
        done, errors = [], []

        def writer():
            for i in range(40):
                out = by[lead].command('propose ["put", "w%d", %d]' % (i, i))
                (done if "ok" in out else errors).append(out)
        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: len(done) >= 5, what="some writes")
        victim.kill()
        t.join(60)
        assert len(done) == 40 and not errors
        again = ReplicaProc(signaling.ws, "kv3", victim.node, victim.db, state=KV)
        reps[reps.index(victim)] = again
        by[victim.node] = again
        want = dict(by[lead].command("state")["ok"])
        assert want["a"] == 2 and all(want["w%d" % i] == i for i in range(40))
        wait_until(lambda: dict(again.command("state")["ok"]) == want, what="restarted caught up")
        # A fourth replica, outside the cluster, is added from a member's stdin.
        four = ReplicaProc(signaling.ws, "kv3", "3", tmp_path / "r3.sqlite", state=KV)
        reps.append(four)
        wait_until(lambda: four.status()["peers"], what="4th connected")
        assert four.status()["membership"] == "none"
        cfg = follower.command("add_learner 3")
        assert cfg["ok"] == {"voters": ["0", "1", "2"], "learners": ["3"]}, cfg
        wait_until(lambda: four.status()["membership"] == "learner", what="learner")
        wait_until(lambda: dict(four.command("state")["ok"]) == want, what="learner caught up")
        cfg = follower.command("promote 3")
        assert cfg["ok"] == {"voters": ["0", "1", "2", "3"], "learners": []}, cfg
        wait_until(lambda: four.status()["membership"] == "voter", what="voter")
        assert four.command('propose ["put", "b", 4]')["ok"] is None
        bad = follower.command("promote 9")
        assert bad["error"] == "invalid" and "not a learner" in bad["reason"]
    finally:
        for r in reps:
            r.kill()


def test_ctrl_c_stops_cleanly_and_the_file_restarts_it(signaling, tmp_path):
    r = ReplicaProc(signaling.ws, "solo", "0", tmp_path / "solo.sqlite", state=KV,
                    extra=["--size", "1"])
    try:
        wait_until(lambda: r.status()["role"] == "leader", what="single voter leads")
        for i in range(5):
            assert "ok" in r.command('propose ["put", "k%d", %d]' % (i, i))
        assert r.interrupt() == 0
        assert "node 0" in r.stderr() and "leader" in r.stderr()
        r = ReplicaProc(signaling.ws, "solo", "0", tmp_path / "solo.sqlite", state=KV,
                        extra=["--size", "1"])
        wait_until(lambda: r.status()["role"] == "leader", what="leads again")
        assert dict(r.command("state")["ok"]) == {"k%d" % i: i for i in range(5)}
        assert r.command("quit")["ok"] == "stopping" and r.wait() == 0
    finally:
        r.kill()


def test_without_a_state_class_it_keeps_the_log_and_says_so(signaling, tmp_path):
    r = ReplicaProc(signaling.ws, "opaque", "0", tmp_path / "o.sqlite",
                    state="no.such.module:State", extra=["--size", "1"])
    try:
        wait_until(lambda: r.status()["role"] == "leader", what="leads")
        assert r.command('propose ["anything", 1]')["ok"] is None
        assert r.command("state")["error"] == "invalid"
        assert "not applying: --state no.such.module:State cannot be imported" in r.stderr()
        assert "not applying" in r.stderr().splitlines()[-1]
    finally:
        r.kill()
    store, log, restored = open_records(tmp_path / "o.sqlite", "opaque", "0")
    store.close()
    assert ["anything", 1] in [e[3] for e in restored.entries]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_input_gets_a_clear_message_and_exit_code(signaling, tmp_path, start_signaling):
    # introducer down at start
    r = ReplicaProc("ws://127.0.0.1:9/ws", "x", "0", tmp_path / "a.sqlite",
                    extra=["--wait-introducer", "1"])
    assert r.wait() == 5 and "cannot reach the introducer at ws://127.0.0.1:9/ws" in r.stderr()
    # the server's access secret: missing, wrong, or on the command line
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("right-access-secret-of-32-chars-x")
    wrong.write_text("wrong-access-secret-of-32-chars-x")
    secured = start_signaling("--secret-file", str(right))
    r = ReplicaProc(secured.ws, "x", "0", tmp_path / "b.sqlite")
    assert r.wait() == 6 and "auth_required" in r.stderr() and "--secret-file" in r.stderr()
    r = ReplicaProc(secured.ws, "x", "0", tmp_path / "b.sqlite", extra=["--secret-file", str(wrong)])
    assert r.wait() == 6 and "wrong access secret" in r.stderr()
    r = ReplicaProc(secured.ws, "x", "0", tmp_path / "b.sqlite", extra=["--secret", "hunter2"])
    assert r.wait() == 2 and "never taken from the command line" in r.stderr()
    assert "hunter2" not in r.stderr()
    # with the secret it joins and keeps the id's token in its file: a stranger
    # with the secret but another file is refused the id; a restart takes it back
    r = ReplicaProc(secured.ws, "x", "0", tmp_path / "b.sqlite", extra=["--secret-file", str(right)])
    try:
        wait_until(lambda: r.status()["introducer_up"], what="joined with the secret")
        other = ReplicaProc(secured.ws, "x", "0", tmp_path / "c.sqlite",
                            extra=["--secret-file", str(right)])
        assert other.wait() == 6 and "id_held" in other.stderr() and "held by another" in other.stderr()
    finally:
        r.kill()
    again = ReplicaProc(secured.ws, "x", "0", tmp_path / "b.sqlite", extra=["--secret-file", str(right)])
    try:
        wait_until(lambda: again.status()["introducer_up"], what="rejoined with its token")
    finally:
        again.kill()
    # a corrupt SQLite file: refused, left as it was
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\x00garbage" * 512)
    h = _sha(bad)
    r = ReplicaProc(signaling.ws, "x", "0", bad)
    assert r.wait() == 3 and "is not a healthy SQLite database" in r.stderr()
    assert _sha(bad) == h
    # another cluster's file
    r = ReplicaProc(signaling.ws, "y", "0", tmp_path / "b.sqlite")
    assert r.wait() == 3 and "belongs to node 0 of cluster x" in r.stderr()


def test_a_full_disk_stops_the_replica_and_loses_no_acknowledged_write(signaling, tmp_path):
    db = tmp_path / "full.sqlite"
    r = ReplicaProc(signaling.ws, "full", "0", db, state=KV,
                    extra=["--size", "1", "--max-db-bytes", str(96 * 1024)])
    acked = {}
    try:
        wait_until(lambda: r.status()["role"] == "leader", what="leads")
        for i in range(200):
            if not r.alive():
                break
            try:
                out = r.command('propose ["put", "k%d", "%s"]' % (i, "v" * 2000), timeout=5)
            except (AssertionError, BrokenPipeError, OSError):
                break
            if "ok" in out:
                acked["k%d" % i] = "v" * 2000
            else:
                assert out["error"] == "halted", out
        assert r.wait() == 4
        assert "disk full" in r.stderr() and "nothing it could not store was acknowledged" in r.stderr()
        assert len(acked) > 5
    finally:
        r.kill()
    r = ReplicaProc(signaling.ws, "full", "0", db, state=KV, extra=["--size", "1"])
    try:
        wait_until(lambda: r.status()["role"] == "leader", what="leads again")
        state = dict(r.command("state")["ok"])
        assert all(state.get(k) == v for k, v in acked.items())
    finally:
        r.kill()


def test_an_opaque_replica_keeps_the_leaders_snapshot_and_passes_it_on(signaling, tmp_path):
    """Without the state class the replica applies nothing, yet as the last
    member it hands a new member the snapshot it got plus the log after it."""
    small = ["--snapshot-entries", "20"]
    reps = [ReplicaProc(signaling.ws, "op", n, tmp_path / ("r%s.sqlite" % n), state=KV, extra=small)
            for n in ("0", "1", "2")]
    try:
        wait_until(lambda: leader_of(reps), timeout=40, what="a leader")
        for i in range(50):
            assert "ok" in reps[i % 3].command('propose ["put", "k%d", %d]' % (i % 7, i))
        want = {"k%d" % (i % 7): i for i in range(50)}  # the last write to each key
        opaque = ReplicaProc(signaling.ws, "op", "3", tmp_path / "r3.sqlite")  # no --state
        reps.append(opaque)
        wait_until(lambda: opaque.status()["peers"], what="connected")
        assert "ok" in reps[1].command("add_learner 3")
        wait_until(lambda: opaque.status()["membership"] == "learner", what="learner")
        assert "ok" in reps[1].command("promote 3")
        for n in ("0", "1", "2"):
            out = opaque.command("remove %s" % n)
            assert "ok" in out, out
        wait_until(lambda: opaque.status()["role"] == "leader", what="opaque leads alone")
        for r in reps[:3]:
            r.kill()
        assert opaque.status()["applied"] >= 50 and opaque.command("state")["error"] == "invalid"
        fresh = ReplicaProc(signaling.ws, "op", "4", tmp_path / "r4.sqlite", state=KV)
        reps.append(fresh)
        wait_until(lambda: "4" in opaque.status()["peers"], what="fresh connected")
        assert "ok" in opaque.command("add_learner 4")
        wait_until(lambda: fresh.status()["membership"] == "learner", what="fresh learner")
        wait_until(lambda: dict(fresh.command("state")["ok"]) == want, what="fresh has it all")
        assert "ok" in opaque.command('propose ["put", "after", 1]')
        wait_until(lambda: dict(fresh.command("state")["ok"]).get("after") == 1, what="and more")
    finally:
        for r in reps:
            r.kill()
    store, _, restored = open_records(tmp_path / "r3.sqlite", "op", "3")
    store.close()
    assert restored.snapshot is not None  # the leader's, kept as received


def test_a_keyed_cluster_of_replicas_and_a_replica_with_another_key(signaling, tmp_path):
    """Replicas given the cluster key (--key-file) form the cluster; one with
    another key, or with none, is told so and exits 9; a key on the command
    line is refused (exit 2) without being repeated."""
    key, wrong = tmp_path / "key", tmp_path / "wrong"
    key.write_text("replica-cluster-key-0123456789\n")
    wrong.write_text("another-cluster-key-0123456789\n")
    reps = [ReplicaProc(signaling.ws, "keyed", n, tmp_path / ("k%s.sqlite" % n), state=KV,
                        extra=["--key-file", str(key)]) for n in ("0", "1")]
    try:
        wait_until(lambda: leader_of(reps), timeout=40, what="a keyed leader")
        for r in reps:
            assert r.status()["transport_stats"]["proofs_verified"] >= 1
        other = ReplicaProc(signaling.ws, "keyed", "2", tmp_path / "k2.sqlite",
                            extra=["--key-file", str(wrong)])
        assert other.wait() == 9 and "cluster key refused" in other.stderr()
        assert "do not verify" in other.stderr() and "--key-file" in other.stderr()
        keyless = ReplicaProc(signaling.ws, "keyed", "3", tmp_path / "k3.sqlite")
        assert keyless.wait() == 9 and "have no key" in keyless.stderr()
        assert leader_of(reps)  # the keyed ones never noticed beyond counting
        # the command-line client: with the key it writes; without, nobody answers it
        code, out, _ = run_client(signaling.ws, "keyed", "--key-file", str(key), "--state",
                                  "raft.kv:KVStateMachine", "put", "k", "1")
        assert code == 0 and out[0]["ok"] is True, out
        code, out, _ = run_client(signaling.ws, "keyed", "--timeout", "3", "--state",
                                  "raft.kv:KVStateMachine", "get", "k")
        assert code == 7 and "drops a client without its key" in out[0]["message"], out
        # the client key (what a client link carries) serves a client, never a member
        ckey = tmp_path / "ckey"
        ckey.write_text(client_key(key.read_text().strip()))
        code, out, _ = run_client(signaling.ws, "keyed", "--key-file", str(ckey), "--state",
                                  "raft.kv:KVStateMachine", "get", "k")
        assert code == 0 and out[0]["value"] == 1, out
        posing = ReplicaProc(signaling.ws, "keyed", "5", tmp_path / "k5.sqlite",
                             extra=["--key-file", str(ckey)])
        assert posing.wait() == 9 and "client key" in posing.stderr()
    finally:
        for r in reps:
            r.kill()
    r = ReplicaProc(signaling.ws, "keyed", "0", tmp_path / "k0.sqlite",
                    extra=["--key", "replica-cluster-key-0123456789"])
    assert r.wait() == 2 and "never taken from the command line" in r.stderr()
    assert "replica-cluster-key" not in r.stderr()
    short = tmp_path / "short"
    short.write_text("short")
    r = ReplicaProc(signaling.ws, "keyed", "0", tmp_path / "k0.sqlite", extra=["--key-file", str(short)])
    assert r.wait() == 2 and "cluster key has 22 to 128 characters" in r.stderr()
