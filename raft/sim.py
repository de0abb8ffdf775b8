"""Deterministic Raft cluster simulator: virtual time, a faulty network,
crashes and restarts from persisted storage, and the Raft safety invariants
checked after every event. Used by tests/raft and benchmarks/core.py.

Pure Python (own PRNG, heapq only) so it also runs under MicroPython.

    c = Cluster(5, seed=7, delay=(1, 20), drop=0.1)
    leader = c.check_one_leader()
    c.partition([["n0", "n1"], ["n2", "n3", "n4"]])
    cl = c.client("alice"); cl.submit(["put", "k", "v"]); c.run_until(cl.idle)
    c.add_node("n5"); cl.change("add_learner", "n5")   # membership changes
"""
import heapq

from . import codec
from .config import Config
from .kv import KVStateMachine
from .node import Node, LEADER
from .rng import Rng


class InvariantError(AssertionError):
    pass


class RecordingKV(KVStateMachine):
    """KV machine that also records every command it applies, in order."""

    def __init__(self):
        KVStateMachine.__init__(self)
        self.applied = []

    def apply(self, command):
        self.applied.append(command)
        return KVStateMachine.apply(self, command)

    def snapshot(self):
        # The record travels with the snapshot so exactly-once stays checkable.
        return {"kv": KVStateMachine.snapshot(self), "applied": list(self.applied)}

    def restore(self, data):
        KVStateMachine.restore(self, data["kv"])
        self.applied = list(data["applied"])


class Link:
    """Fault model of one direction of one link (delays in virtual ms)."""

    def __init__(self, delay=(1, 5), drop=0.0, dup=0.0, reorder=0.0):
        self.delay_min = delay[0]
        self.delay_max = delay[1]
        self.drop = drop
        self.dup = dup
        self.reorder = reorder   # chance of an extra delay of up to 10x delay_max


class Client:
    """A client session: one command in flight, retried with the SAME
    (client id, seq) until it gets a result, so it must apply exactly once."""

    def __init__(self, cluster, cid, retry_ms=100, stray=0.2):
        self.c = cluster
        self.cid = cid
        self.seq = 0
        self.retry_ms = retry_ms
        self.stray = stray       # chance of sending to any live node, not the leader
        self.queue = []          # commands not yet submitted
        self.current = None      # [seq, command]
        self.acked = {}          # seq -> result
        self.changes = {}        # seq -> [op, target, error, value]: membership outcomes
        self.errors = {}         # error -> count
        self.via = None
        self.attempt = 0

    def submit(self, command):
        self.queue.append(command)
        if self.current is None:
            self._next()

    def change(self, op, target):
        """Queue a membership change (retried with the same seq like a command)."""
        self.submit(_Change(op, target))

    def idle(self):
        return self.current is None and not self.queue

    def _next(self):
        if not self.queue:
            self.current = None
            return
        self.seq += 1
        self.current = [self.seq, self.queue.pop(0)]
        self._send()

    def _send(self):
        if self.current is None:
            return
        c = self.c
        target = c.known_leader()
        if target is None or c.rng.chance(self.stray):
            alive = c.alive()
            if not alive:
                c.after(self.retry_ms, self._send)
                return
            target = c.rng.choice(alive)
        self.via = target
        self.attempt += 1
        attempt = self.attempt
        # The node may crash with our proposal: give up on it after a while.
        c.after(c.config.request_timeout_ms + self.retry_ms,
                lambda: self._resend_if_stuck(attempt))
        cmd = self.current[1]
        if isinstance(cmd, _Change):
            c.change_membership(target, self.cid, self.current[0], cmd.op, cmd.target)
        else:
            c.propose(target, self.cid, self.current[0], cmd)

    def _resend_if_stuck(self, attempt):
        if attempt == self.attempt and self.current is not None:
            self._send()

    def on_result(self, seq, error, value):
        if self.current is None or seq != self.current[0]:
            return
        cmd = self.current[1]
        if isinstance(cmd, _Change):
            if error is None or error in ("invalid", "unsafe"):
                self.changes[seq] = [cmd.op, cmd.target, error, value]
                self._next()
                return
        if error is None:
            self.acked[seq] = [cmd, value]
            self._next()
        else:
            self.errors[error] = self.errors.get(error, 0) + 1
            if error in ("invalid", "too_large", "session_expired"):
                self._next()
            else:
                self.attempt += 1          # cancel the stuck-check of this attempt
                self.c.after(self.retry_ms, self._send)


class _Change:
    def __init__(self, op, target):
        self.op = op
        self.target = target

    def __repr__(self):
        return "change(%s %s)" % (self.op, self.target)


class Cluster:
    def __init__(self, n=3, seed=1, config=None, delay=(1, 5), drop=0.0,
                 dup=0.0, reorder=0.0, wire=True, check=True, ids=None,
                 state_machine=RecordingKV, crash_mid_ready=0.0):
        self.ids = ids or ["n%d" % i for i in range(n)]
        self.boot = list(self.ids)   # the bootstrap configuration every node starts with
        self.seed = seed
        self.rng = Rng(seed)
        self.config = config or Config(election_min_ms=150, election_max_ms=300,
                                       heartbeat_ms=30)
        self.default_link = Link(delay, drop, dup, reorder)
        self.links = {}           # (src, dst) -> Link overriding the default
        self.cut = set()          # (src, dst) pairs that deliver nothing
        self.wire = wire
        self.check = check
        self.sm_factory = state_machine
        self.now = 0
        self.queue = []
        self.qseq = 0
        self.nodes = {}           # id -> Node, or None while crashed
        self.store = {}           # id -> [hard_state, log, snapshot]: what survives a crash;
                                  # log[0] is the entry after the snapshot's index
        self.tick_at = {}
        self.clients = {}
        self.events = 0
        self.msg_count = {}
        self.msg_bytes = 0
        self.msgs_sent = 0
        self.entries_sent = 0
        # invariant bookkeeping
        self.committed = [None]   # index -> entry, as first committed anywhere
        self.leader_of_term = {}
        self.votes = {}           # (id, term) -> vote
        self.max_term = {}
        self.max_commit = {}
        self.log_registry = {}    # (index, term) -> [prev_term, entry]
        self.leader_checked = {}
        self.conf_committed = [sorted(self.boot)]   # voters of each committed configuration
        self.conf_by = {}         # (client id, seq) of each committed change
        self.tap = None           # tests: called with every message sent
        self.hold = None          # tests: hold(m) -> True keeps m back until release_held()
        self.held = []
        # chance that a node crashes after persisting a Ready but before
        # sending its messages / applying: all in-memory progress is lost
        self.crash_mid_ready = crash_mid_ready
        self.mid_ready_crashes = 0
        for i in self.ids:
            self.store[i] = [[0, None, 0], [], None]
            self.start(i)

    # ------------------------------------------------------------ scheduling
    def _push(self, t, kind, a, b=None):
        self.qseq += 1
        heapq.heappush(self.queue, (t, self.qseq, kind, a, b))

    def after(self, ms, fn):
        self._push(self.now + ms, "call", fn)

    def _schedule_tick(self, nid):
        node = self.nodes[nid]
        if node is None:
            return
        d = node.next_deadline()
        if d < self.now:
            d = self.now
        cur = self.tick_at.get(nid)
        if cur is None or d < cur:
            self.tick_at[nid] = d
            self._push(d, "tick", nid)

    def step_once(self):
        """Run the next event; False when nothing is scheduled."""
        if not self.queue:
            return False
        t, _, kind, a, b = heapq.heappop(self.queue)
        if t > self.now:
            self.now = t
        self.events += 1
        if kind == "msg":
            node = self.nodes.get(b[0])
            if node is not None and (a, b[0]) not in self.cut:
                node.tick(t)      # the driver passes the time before each input
                if self.wire:
                    node.receive(b[1], a)     # a: the sender, as a channel knows it
                else:
                    node.step(b[1])
                self._drain(b[0])
        elif kind == "tick":
            if self.tick_at.get(a) == t and self.nodes.get(a) is not None:
                self.tick_at[a] = None
                self.nodes[a].tick(t)
                self._drain(a)
        else:
            a()
        return True

    def run_for(self, ms):
        end = self.now + ms
        while self.queue and self.queue[0][0] <= end:
            self.step_once()
        if self.now < end:
            self.now = end

    def run_until(self, pred, max_ms=10000):
        end = self.now + max_ms
        while not pred():
            if not self.queue or self.queue[0][0] > end:
                self.now = end
                return pred()
            self.step_once()
        return True

    # ------------------------------------------------------------ nodes
    def start(self, nid):
        hs, log, snap = self.store[nid]
        storage = None
        if snap is not None:
            storage = (list(hs), list(log), snap)
        elif hs[0] or log:
            storage = (list(hs), list(log))
        node = Node(nid, self.boot, self.config, Rng(self.rng.next_u32()).random,
                    self.sm_factory(), storage, self.now)
        self.nodes[nid] = node
        self.tick_at[nid] = None
        self.max_commit[nid] = node.commit_index
        self._drain(nid)

    def add_node(self, nid):
        """Start a fresh node outside the configuration (an outsider until a
        change adds it)."""
        if nid in self.nodes:
            raise ValueError("node %s exists" % nid)
        self.ids.append(nid)
        self.store[nid] = [[0, None, 0], [], None]
        self.start(nid)

    def crash(self, nid):
        """Stop a node: memory is lost, its persisted storage stays."""
        self.nodes[nid] = None
        self.tick_at[nid] = None

    def restart(self, nid):
        if self.nodes.get(nid) is None:
            self.start(nid)

    def alive(self):
        return [i for i in self.ids if self.nodes[i] is not None]

    def propose(self, nid, cid, seq, command):
        node = self.nodes[nid]
        if node is None:
            self.after(1, lambda: self._route_result(nid, [cid, seq, "no_leader", None]))
            return
        node.tick(self.now)
        node.propose(cid, seq, command)
        self._drain(nid)

    def change_membership(self, nid, cid, seq, op, target):
        node = self.nodes[nid]
        if node is None:
            self.after(1, lambda: self._route_result(nid, [cid, seq, "no_leader", None]))
            return
        node.tick(self.now)
        node.change_membership(cid, seq, op, target)
        self._drain(nid)

    def read(self, nid, ctx):
        self.nodes[nid].tick(self.now)
        self.nodes[nid].read_index(ctx)
        self._drain(nid)

    def client(self, cid, retry_ms=100):
        cl = Client(self, cid, retry_ms)
        self.clients[cid] = cl
        return cl

    def _route_result(self, nid, r):
        cl = self.clients.get(r[0])
        if cl is not None and cl.via == nid:
            cl.on_result(r[1], r[2], r[3])

    def _drain(self, nid):
        """The driver loop: persist, send, advance, until nothing is ready."""
        node = self.nodes[nid]
        while node.has_ready():
            rd = node.ready()
            self._persist(nid, node, rd)
            if self.crash_mid_ready and self.rng.chance(self.crash_mid_ready):
                self.mid_ready_crashes += 1
                self.crash(nid)
                self.after(self.rng.randint(1, 3 * self.config.election_max_ms),
                           lambda: self.restart(nid))
                return
            for m in rd.messages:
                self._send(m)
            node.advance(rd)
            if rd.committed and self.check:
                self._check_applied(nid, node, rd)
            for r in rd.results:
                self._route_result(nid, r)
            self.reads_done(nid, rd.reads)
        if self.check:
            self._check_node(nid, node)
        self._schedule_tick(nid)

    def reads_done(self, nid, reads):
        """Hook for tests: reads [ctx, error] released by node nid."""
        pass

    def _snap_index(self, nid):
        snap = self.store[nid][2]
        return snap[0] if snap is not None else 0

    def _persist(self, nid, node, rd):
        st = self.store[nid]
        if rd.snapshot is not None:
            self._persist_snapshot(nid, st, rd)
        if rd.hard_state is not None:
            hs = rd.hard_state
            if self.check:
                self._check_hard_state(nid, st[0], hs)
            st[0] = list(hs)
        if rd.entries:
            log = st[1]
            first = rd.entries_from
            base = self._snap_index(nid)
            if first <= base:
                self._fail("%s persists entries from %d below its snapshot %d" % (nid, first, base))
            del log[first - 1 - base:]
            if self.check:
                self._check_log_matching(nid, log, first, rd.entries)
            log.extend(rd.entries)

    def _persist_snapshot(self, nid, st, rd):
        index, term, data = rd.snapshot
        old = st[2][0] if st[2] is not None else 0
        if self.check:
            # Snapshot safety: it covers only committed entries, ends on the
            # committed entry's term, and holds exactly the state they produce.
            com = self.committed
            if index < old:
                self._fail("%s: snapshot went back %d -> %d" % (nid, old, index))
            if index >= len(com) or com[index][0] != term:
                self._fail("%s: snapshot at %d (term %d) is not of committed entries" % (nid, index, term))
            if data.get("index") != index:
                self._fail("%s: snapshot data index %r != %d" % (nid, data.get("index"), index))
            if self.sm_factory is RecordingKV:
                ref = RecordingKV()
                ref.restore(data["sm"])
                # replay the record: the kv state must match it
                chk = KVStateMachine()
                for cmd in ref.applied:
                    chk.apply(cmd)
                if chk.data != ref.data:
                    self._fail("%s: snapshot at %d: state differs from its applied commands" % (nid, index))
        if rd.log_discarded:
            st[1] = []
        else:
            st[1] = st[1][index - old:] if index - old < len(st[1]) else []
        st[2] = [index, term, data]

    def _send(self, m):
        src = m[1]
        dst = m[2]
        t = m[0]
        self.msgs_sent += 1
        self.msg_count[t] = self.msg_count.get(t, 0) + 1
        if self.tap is not None:
            self.tap(m)
        if t == "a":
            self.entries_sent += len(m[6])
        if self.wire:
            payload = codec.encode(m)
            self.msg_bytes += len(payload)
        else:
            payload = m
        if (src, dst) in self.cut:
            return
        if self.hold is not None and self.hold(m):
            self.held.append((src, dst, payload))
            return
        link = self.links.get((src, dst)) or self.default_link
        rng = self.rng
        if rng.chance(link.drop):
            return
        copies = 2 if rng.chance(link.dup) else 1
        for _ in range(copies):
            d = link.delay_min
            if link.delay_max > d:
                d = rng.randint(d, link.delay_max)
            if rng.chance(link.reorder):
                d += rng.randint(0, 10 * (link.delay_max + 1))
            self._push(self.now + d, "msg", src, (dst, payload))

    def release_held(self):
        """Deliver the messages hold() kept back, now (a long reordering)."""
        held, self.held = self.held, []
        for src, dst, payload in held:
            self._push(self.now + 1, "msg", src, (dst, payload))

    # ------------------------------------------------------------ network faults
    def disconnect(self, nid):
        for o in self.ids:
            if o != nid:
                self.cut.add((nid, o))
                self.cut.add((o, nid))

    def connect(self, nid):
        for o in self.ids:
            self.cut.discard((nid, o))
            self.cut.discard((o, nid))

    def partition(self, groups):
        """Only nodes in the same group can talk."""
        self.cut = set()
        where = {}
        for gi in range(len(groups)):
            for nid in groups[gi]:
                where[nid] = gi
        for a in self.ids:
            for b in self.ids:
                if a != b and where.get(a, -1) != where.get(b, -2):
                    self.cut.add((a, b))

    def heal(self):
        self.cut = set()

    def connected(self, a, b):
        return (a, b) not in self.cut and (b, a) not in self.cut

    # ------------------------------------------------------------ lab-style checks
    def leaders(self):
        return [i for i in self.alive() if self.nodes[i].role == LEADER]

    def known_leader(self):
        best = None
        for i in self.alive():
            n = self.nodes[i]
            if n.role == LEADER and (best is None or n.term > self.nodes[best].term):
                best = i
        return best

    def stable_leader(self):
        """A leader that a majority of live, connected nodes follow, else None."""
        for lid in self.leaders():
            ln = self.nodes[lid]
            n = 1 if lid in ln.voters else 0
            for o in self.alive():
                if o != lid and o in ln.voters and self.connected(lid, o):
                    on = self.nodes[o]
                    if on.term == ln.term and on.leader_id == lid:
                        n += 1
            if n >= ln.quorum:
                return lid
        return None

    def check_one_leader(self, max_ms=10000):
        if not self.run_until(lambda: self.stable_leader() is not None, max_ms):
            raise InvariantError("no stable leader within %d ms (seed %d)" % (max_ms, self.seed))
        return self.stable_leader()

    def n_committed(self, index):
        """(how many live nodes have committed index, the entry)."""
        n = 0
        entry = None
        for i in self.alive():
            node = self.nodes[i]
            if node.commit_index >= index:
                if index <= node.offset:
                    n += 1             # compacted: covered by its snapshot, matches
                    continue
                e = node.log[index - node.offset]
                if entry is not None and e != entry:
                    raise InvariantError("committed values differ at %d" % index)
                entry = e
                n += 1
        return n, entry

    def one(self, command, expected, max_ms=10000, cid="one"):
        """Submit through a client until `expected` nodes commit it; its index."""
        cl = self.clients.get(cid) or self.client(cid)
        cl.submit(command)
        seq = cl.seq if cl.current is None else cl.current[0]

        def committed_everywhere():
            if seq not in cl.acked:
                return False
            idx = self.index_of(cid, seq)
            return idx is not None and self.n_committed(idx)[0] >= expected
        if not self.run_until(committed_everywhere, max_ms):
            raise InvariantError("command %r not committed on %d nodes" % (command, expected))
        return self.index_of(cid, seq)

    def index_of(self, cid, seq):
        for i in range(1, len(self.committed)):
            e = self.committed[i]
            if e[1] == cid and e[2] == seq:
                return i
        return None

    # ------------------------------------------------------------ liveness
    def lagging_members(self):
        """Live members of the stable leader's configuration that do not hold
        and apply its whole committed log yet; None without a stable leader."""
        lid = self.stable_leader()
        if lid is None:
            return None
        ld = self.nodes[lid]
        out = []
        for i in self.alive():
            if i in ld.voters or i in ld.learners:
                n = self.nodes[i]
                if n.commit_index != ld.commit_index or n.applied_index != ld.commit_index:
                    out.append(i)
        return out

    def check_converges(self, within_ms=10000):
        """Call once faults have stopped: every live member converges within
        within_ms of simulated time (the stable leader's commit index, all of
        it applied). Returns the ms it took."""
        start = self.now
        if not self.run_until(lambda: self.lagging_members() == [], within_ms):
            lag = self.lagging_members()
            self._fail("liveness: no convergence within %d ms after faults stopped (%s)" % (
                within_ms, "no stable leader" if lag is None else "behind: %s" % ", ".join(
                    "%s at commit %d applied %d" % (
                        i, self.nodes[i].commit_index, self.nodes[i].applied_index)
                    for i in lag)))
        return self.now - start

    def check_quiet(self, idle_ms=1000):
        """With no client traffic: an idle stretch carries heartbeats and
        their replies only, never a message storm. Returns the count."""
        n0 = self.msgs_sent
        self.run_for(idle_ms)
        sent = self.msgs_sent - n0
        lid = self.known_leader()
        targets = len(self.nodes[lid].targets) if lid is not None else len(self.ids)
        # A heartbeat and its reply per target per heartbeat interval, twice over.
        bound = 4 * max(1, targets) * (idle_ms // self.config.heartbeat_ms + 1)
        if sent > bound:
            self._fail("liveness: %d messages in %d idle ms (bound %d): a message storm"
                       % (sent, idle_ms, bound))
        return sent

    def check_liveness(self, within_ms=10000, idle_ms=1000):
        """check_converges, then check_quiet (call with no client traffic)."""
        took = self.check_converges(within_ms)
        self.check_quiet(idle_ms)
        return took

    # ------------------------------------------------------------ invariants
    def _fail(self, what):
        raise InvariantError("%s (seed %d, t=%d ms)" % (what, self.seed, self.now))

    def _check_hard_state(self, nid, old, hs):
        term, vote, commit = hs
        if term < old[0]:
            self._fail("%s: persisted term went back %d -> %d" % (nid, old[0], term))
        if commit < old[2]:
            self._fail("%s: persisted commit went back %d -> %d" % (nid, old[2], commit))
        if vote is not None:
            key = (nid, term)
            prev = self.votes.get(key)
            if prev is not None and prev != vote:
                self._fail("%s voted twice in term %d: %s and %s" % (nid, term, prev, vote))
            self.votes[key] = vote

    def _check_log_matching(self, nid, log, first, entries):
        # (index, term) must identify one entry and one predecessor term: by
        # induction this is the Log Matching Property across all nodes.
        reg = self.log_registry
        base = self._snap_index(nid)
        if first - 2 - base >= 0:
            prev_term = log[first - 2 - base][0]
        elif base:
            prev_term = self.store[nid][2][1]    # the snapshot's last term
        else:
            prev_term = 0
        idx = first
        for e in entries:
            key = (idx, e[0])
            old = reg.get(key)
            if old is None:
                reg[key] = [prev_term, e]
            elif old[0] != prev_term or old[1] != e:
                self._fail("log matching: %s index %d term %d differs" % (nid, idx, e[0]))
            prev_term = e[0]
            idx += 1

    def _check_applied(self, nid, node, rd):
        com = self.committed
        idx = rd.committed_from
        stored = self.store[nid][1]
        base = self._snap_index(nid)
        for e in rd.committed:
            if idx < len(com):
                if com[idx] != e:
                    self._fail("state machine safety: %s applied a different entry at %d" % (nid, idx))
            elif idx == len(com):
                com.append(e)
                if e[1] is None and e[3] is not None:
                    self._check_single_server_change(e[3])
            else:
                self._fail("%s applied %d out of order" % (nid, idx))
            if idx <= base or idx - base > len(stored) or stored[idx - 1 - base] != e:
                self._fail("%s applied entry %d that it has not persisted" % (nid, idx))
            idx += 1

    def _check_single_server_change(self, conf):
        # Single-server changes: consecutive committed configurations differ
        # by at most one voter, so any two majorities overlap.
        old = self.conf_committed[-1]
        new = conf["voters"]
        diff = len([v for v in new if v not in old]) + len([v for v in old if v not in new])
        if diff > 1:
            self._fail("configuration changed %d voters at once: %r -> %r" % (diff, old, new))
        # Exactly once: a retried change request never commits twice.
        by = (conf["by"][0], conf["by"][1])
        if by in self.conf_by:
            self._fail("membership change %r committed twice" % (by,))
        self.conf_by[by] = len(self.conf_committed)
        self.conf_committed.append(list(new))

    def _check_node(self, nid, node):
        if node.term < self.max_term.get(nid, 0):
            self._fail("%s term went back" % nid)
        self.max_term[nid] = node.term
        if node.commit_index < self.max_commit.get(nid, 0):
            self._fail("%s commit index went back" % nid)
        self.max_commit[nid] = node.commit_index
        if node.role == LEADER:
            # One change at a time: at most one configuration entry beyond the commit index.
            pending = 0
            for c in node.conf_log:
                if c[0] > node.commit_index:
                    pending += 1
            if pending > 1:
                self._fail("%s has %d uncommitted configuration changes" % (nid, pending))
            other = self.leader_of_term.get(node.term)
            if other is None:
                self.leader_of_term[node.term] = nid
            elif other != nid:
                self._fail("election safety: %s and %s both lead term %d" % (other, nid, node.term))
            if self.leader_checked.get(nid) != node.term:
                self.leader_checked[nid] = node.term
                com = self.committed
                if node.last_index() < len(com) - 1:
                    self._fail("leader completeness: %s lacks committed entries" % nid)
                off = node.offset
                if 0 < off < len(com) and node.log[0][0] != com[off][0]:
                    self._fail("leader completeness: %s snapshot term differs at %d" % (nid, off))
                for i in range(off + 1, len(com)):
                    if node.log[i - off] != com[i]:
                        self._fail("leader completeness: %s differs at %d" % (nid, i))

    def check_exactly_once(self):
        """Every acknowledged command applied exactly once, others at most once,
        on every live node that has applied the whole committed log."""
        want = {}
        for cl in self.clients.values():
            for seq in cl.acked:
                want[(cl.cid, seq)] = 1
        top = len(self.committed) - 1
        for nid in self.alive():
            node = self.nodes[nid]
            if node.applied_index < top:
                continue
            counts = {}
            for cmd in node.state_machine.applied:
                k = repr(cmd)
                counts[k] = counts.get(k, 0) + 1
            for k in counts:
                if counts[k] > 1:
                    self._fail("%s applied %s %d times" % (nid, k, counts[k]))
            for cl in self.clients.values():
                for seq in cl.acked:
                    k = repr(cl.acked[seq][0])
                    if counts.get(k, 0) != 1:
                        self._fail("%s: acknowledged %s applied %d times" % (nid, k, counts.get(k, 0)))
        return len(want)
