"""A simulator driver for linearizability checking: concurrent key/value
clients (put, get, delete, compare-and-set through the log, exactly-once
sessions with retries) and readers (ReadIndex reads on every kind of node:
leader, followers, learners) against a raft.sim.Cluster under faults
(partitions, crashes, crashes between persist and send, loss, duplication,
reordering, leader isolation, tiny snapshot thresholds, membership changes).
It records every operation as [op, key, args, output, call, return] for
tests/raft/linearizability.py. Plain Python (no pytest)."""
from raft.config import Config
from raft.rng import Rng
from raft.sim import Cluster, Client, InvariantError

KEYS = ("x", "y", "z")
# Liveness bounds (simulated ms after faults stop): ten election timeouts.
CONVERGE_MS = 3000
CLIENTS_DONE_MS = 20000
# Errors after which a command was certainly not applied: left out of the history.
NOT_APPLIED = ("invalid", "too_large")


# Fault mixes: each fault step picks one kind with these chances (the rest:
# nothing). A seed picks its mix; all of them run in the suite.
PROFILES = {
    "mixed": [("crash", 0.12), ("restart", 0.18), ("partition", 0.15), ("isolate", 0.2),
              ("heal", 0.1)],
    "isolation": [("isolate", 0.35), ("crash", 0.05), ("restart", 0.1), ("heal", 0.05)],
    "partitions": [("partition", 0.35), ("heal", 0.2), ("isolate", 0.1)],
    "crashes": [("crash", 0.3), ("restart", 0.3), ("heal", 0.1)],
    # followers crashing and coming back often: snapshot transfers cut short
    "restarts": [("crash_follower", 0.35), ("restart", 0.35), ("isolate", 0.1), ("heal", 0.1)],
}


class Writer(Client):
    """A sim client whose commands are recorded: one in flight, retried with
    the same (client id, seq) until a final outcome."""

    def __init__(self, cluster, cid, history, give_up_ms=None):
        # Often to any live node (a page attached to a member that may be
        # cut off, or a stale leader), which forwards or appends it.
        Client.__init__(self, cluster, cid, retry_ms=40, stray=0.4)
        self.history = history
        self.op = None
        self.answered = 0         # last attempt that got an outcome
        # Like a page whose retry window ran out: give up on a command after
        # this long and go on with the next seq (its outcome stays unknown).
        self.give_up_ms = give_up_ms

    def _send(self):
        Client._send(self)
        c = self.c
        node = c.nodes.get(self.via)
        if self.current is None or node is None:
            return
        attempt = self.attempt
        # Every proposal ends: a node that stays up answers within its
        # request timeout (checked once per heartbeat) with a result or an error.
        c.after(c.config.request_timeout_ms + c.config.heartbeat_ms + 5,
                lambda: self._check_answered(attempt, self.via, node))

    def _check_answered(self, attempt, nid, node):
        if (attempt == self.attempt and self.answered != attempt and self.current is not None
                and self.c.nodes.get(nid) is node):
            raise InvariantError("proposal %s/%d on %s got no answer within its request timeout "
                                 "(seed %d)" % (self.cid, self.current[0], nid, self.c.seed))

    def _next(self):
        Client._next(self)
        self.op = None
        if self.current is not None and type(self.current[1]) is list:
            cmd = self.current[1]
            self.op = [cmd[0], cmd[1], cmd[2:], None, self.c.now, None]
            self.history.append(self.op)
            if self.give_up_ms:
                seq = self.current[0]
                self.c.after(self.give_up_ms, lambda: self._give_up(seq))

    def _give_up(self, seq):
        if self.current is not None and self.current[0] == seq:
            self.attempt += 1            # cancel the stuck-check of the last attempt
            self._next()

    def on_result(self, seq, error, value):
        op = self.op
        if self.current is not None and seq == self.current[0]:
            self.answered = self.attempt
        if op is not None and self.current is not None and seq == self.current[0]:
            if error is None:
                op[3] = value
                op[5] = self.c.now
            elif error in NOT_APPLIED:
                self.history.remove(op)
            # session_expired, or still pending at the end: outcome unknown
        Client.on_result(self, seq, error, value)


class Reader:
    """ReadIndex reads, one at a time, each on a random live node of any kind."""

    def __init__(self, cluster, name, history, rng, keys=KEYS, gap_ms=(0, 20)):
        self.c = cluster
        self.name = name
        self.history = history
        self.rng = rng
        self.keys = keys
        self.gap_ms = gap_ms
        self.n = 0
        self.cur = None          # [ctx, node id, key, call time, node]
        self.stopped = False
        self.done_reads = 0

    def start(self):
        self.c.after(self.rng.randint(*self.gap_ms), self._read)

    def _read(self):
        if self.stopped:
            return
        alive = [i for i in self.c.alive()]
        if not alive:
            self.c.after(20, self._read)
            return
        # Any kind of node; often one that thinks it leads (a new leader just
        # elected, or an old one cut off that has not noticed yet).
        leaders = self.c.leaders()
        nid = self.rng.choice(leaders if leaders and self.rng.chance(0.4) else alive)
        self.n += 1
        ctx = "%s.%d" % (self.name, self.n)
        node = self.c.nodes[nid]
        self.cur = [ctx, nid, self.rng.choice(self.keys), self.c.now, node]
        self.c.read(nid, ctx)
        # Every read ends within its request timeout (checked once per
        # heartbeat) unless its node crashed with it: then it never answers.
        cfg = self.c.config
        self.c.after(cfg.request_timeout_ms + cfg.heartbeat_ms + 5,
                     lambda: self._check_ended(ctx, nid, node))

    def _check_ended(self, ctx, nid, node):
        if self.cur is not None and self.cur[0] == ctx:
            if self.c.nodes.get(nid) is node:
                raise InvariantError("read %s on %s did not end within its request timeout "
                                     "(seed %d)" % (ctx, nid, self.c.seed))
            self.cur = None
            self._read()

    def on_reads(self, nid, reads):
        for ctx, err in reads:
            cur = self.cur
            if cur is None or ctx != cur[0] or nid != cur[1]:
                continue
            self.cur = None
            if err is None:
                # (the node object the read ran on: it may crash in a nested drain)
                self.history.append(["read", cur[2], [], cur[4].state_machine.data.get(cur[2]),
                                     cur[3], self.c.now])
                self.done_reads += 1
            self.c.after(self.rng.randint(*self.gap_ms), self._read)


class Workload:
    """One seeded run: build the cluster, start the clients, inject faults,
    stop them, let everything finish; then `history` holds the operations."""

    def __init__(self, seed, n=None, ops_per_writer=20, writers=3, readers=3,
                 fault_ms=2500, membership=None, snapshots=None, profile=None,
                 check_quorum=None):
        rng = Rng(seed * 7919 + 17)
        self.rng = rng
        self.seed = seed
        self.profile = profile or rng.choice(sorted(PROFILES))
        n = n or rng.choice([3, 3, 5])
        if snapshots is None:
            snapshots = rng.choice([0, 6, 12, 30])
        cfg = Config(election_min_ms=150, election_max_ms=300, heartbeat_ms=30,
                     snapshot_entries=snapshots, max_bytes_per_msg=1000,
                     request_timeout_ms=300,
                     check_quorum=rng.chance(0.7) if check_quorum is None else check_quorum,
                     pre_vote=rng.chance(0.7))
        lossy = rng.chance(0.6)
        self.c = c = Cluster(n, seed, config=cfg, delay=(1, 12),
                             drop=0.05 if lossy else 0.0, dup=0.05 if lossy else 0.0,
                             reorder=0.1 if lossy else 0.0, crash_mid_ready=0.002)
        self.history = []
        self.writers = [Writer(c, "w%d" % k, self.history, 800 if k == 0 else None)
                        for k in range(writers)]
        self.readers = [Reader(c, "r%d" % k, self.history, Rng(seed * 31 + k))
                        for k in range(readers)]
        c.reads_done = self._reads_done
        for w in self.writers:
            c.clients[w.cid] = w
        self.membership = rng.chance(0.5) if membership is None else membership
        self.fault_ms = fault_ms
        self.ops_per_writer = ops_per_writer
        self.values = {}
        self.counter = 0
        self.isolated = {}        # node id -> until when it stays cut off

    def _write_soon(self, w, left):
        if left <= 0:
            return
        if not w.idle():
            self.c.after(10, lambda: self._write_soon(w, left))
            return
        w.submit(self._command())
        gap = self.fault_ms // self.ops_per_writer
        self.c.after(self.rng.randint(gap // 2, gap * 3 // 2),
                     lambda: self._write_soon(w, left - 1))

    def writes_done(self):
        return all(w.idle() and w.seq >= self.ops_per_writer for w in self.writers)

    def _reads_done(self, nid, reads):
        for r in self.readers:
            r.on_reads(nid, reads)

    def _command(self):
        rng = self.rng
        k = rng.choice(KEYS)
        self.counter += 1
        v = "v%d" % self.counter
        r = rng.random()
        if r < 0.5:
            cmd = ["put", k, v]
        elif r < 0.65:
            cmd = ["del", k]
        elif r < 0.85:
            old = self.values.get(k) if rng.chance(0.7) else None
            cmd = ["cas", k, old, v]
        else:
            cmd = ["get", k]
        if cmd[0] in ("put", "cas"):
            self.values[k] = v
        return cmd

    def run(self):
        c, rng = self.c, self.rng
        c.check_one_leader()
        # Writes spread over the whole faulty stretch, each writer one at a time.
        for w in self.writers:
            self._write_soon(w, self.ops_per_writer)
        for r in self.readers:
            r.start()
        admin = None
        changes = []
        if self.membership:
            c.add_node("n%d" % len(c.ids))
            admin = c.client("admin", retry_ms=60)
            new = c.ids[-1]
            victim = rng.choice(c.boot)
            changes = [("add_learner", new), ("promote", new), ("remove", victim)]
        end = c.now + self.fault_ms
        while c.now < end:
            self._fault()
            if admin is not None and changes and admin.idle() and rng.chance(0.3):
                op, target = changes.pop(0)
                admin.change(op, target)
            c.run_for(rng.randint(40, 250))
        self.stop_faults()
        # Liveness: once faults stop, every live member catches up within a
        # bounded time (clients still writing), and the clients finish.
        self.converge_ms = c.check_converges(CONVERGE_MS)
        if not c.run_until(lambda: self.writes_done() and (admin is None or admin.idle()),
                           CLIENTS_DONE_MS):
            raise InvariantError("liveness: clients not done %d ms after faults stopped (seed %d)"
                                 % (CLIENTS_DONE_MS, self.seed))
        for r in self.readers:
            r.stopped = True
        c.run_for(2 * c.config.request_timeout_ms)
        # ... and with no client traffic left, only heartbeats flow.
        c.check_liveness(CONVERGE_MS)
        return True

    def _fault(self):
        c, rng = self.c, self.rng
        ids = list(c.ids)
        alive = c.alive()
        r = rng.random()
        kind = None
        for name, p in PROFILES[self.profile]:
            if r < p:
                kind = name
                break
            r -= p
        if kind == "crash_follower":
            leader = c.known_leader()
            followers = [i for i in alive if i != leader]
            if followers and len(alive) > len(ids) // 2 + 1:
                c.crash(rng.choice(followers))
        elif kind == "crash":
            # Mostly keep a majority up, so the cluster works while it is hurt.
            if alive and (len(alive) > len(ids) // 2 + 1 or rng.chance(0.2)):
                c.crash(rng.choice(alive))
        elif kind == "restart":
            for i in ids:
                if c.nodes[i] is None:
                    c.restart(i)
        elif kind == "partition":
            k = rng.randint(1, len(ids) - 1)
            shuffled = sorted(ids, key=lambda _: rng.random())
            c.partition([shuffled[:k], shuffled[k:]])
        elif kind == "isolate":
            # The leader cut off for a while (on top of any partition): it
            # may go on thinking it leads while the others elect another.
            leader = c.known_leader()
            if leader is not None:
                self.isolated[leader] = c.now + rng.randint(200, 1500)
        elif kind == "heal":
            c.heal()
            self.isolated = {}
        for nid in sorted(self.isolated):
            if self.isolated[nid] <= c.now:
                del self.isolated[nid]
                c.connect(nid)
            else:
                c.disconnect(nid)

    def stop_faults(self):
        c = self.c
        self.isolated = {}
        c.heal()
        c.default_link.drop = c.default_link.dup = c.default_link.reorder = 0.0
        c.crash_mid_ready = 0.0
        for i in c.ids:
            c.restart(i)
