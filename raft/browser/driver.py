"""The asyncio driver every page shares: runs one raft.Node in the browser.

Loop (raft/API.md): tick -> Ready -> persist -> send -> advance (apply) ->
resolve proposal futures and ReadIndex reads. Nothing that depends on a Ready
is sent before its hard state and entries are stored, so a node never
acknowledges what it could not persist; when storage is full the node halts
(offline, visible error) instead.

This module imports neither js nor pyscript: the clock, the key/value store
and the transport are passed in (raft/browser/app.py wires the real ones), so
the same code runs under MicroPython, Pyodide and CPython.
"""

import asyncio

from raft import codec
from raft.client import is_client_id
from raft.records import RecordLog, StorageFull

# How often the core is ticked. Heartbeats are 100 ms and elections 1.5-3 s;
# hidden tabs may stretch this to 1 s, which those timeouts tolerate.
TICK_MS = 25
# Proposals/reads that fail for want of a leader are retried for this long.
RETRY_WINDOW_MS = 8000
RETRY_PAUSE_MS = 150
RETRYABLE = ("no_leader", "leadership_lost", "timeout")
# A membership change also waits out the previous one (one at a time), and a
# promotion a learner that is a few entries behind (it acks within a round trip).
CHANGE_RETRYABLE = RETRYABLE + ("conf_pending",)
NOT_CAUGHT_UP = "is not caught up"  # in the core's reason (raft/membership.py)
PROMOTE_RETRY_MS = 2000
# on_message drains at once while at most this many writes wait here.
SYNC_DRAIN_MAX_WAITING = 4
SYNC_DRAIN_MAX_CHARS = 1000  # ... and the message is this short (not a big batch)
# Early first election (campaign_early): after a heartbeat (100 ms) plus jitter.
EARLY_ELECTION_MS = (150, 450)


class ProposalError(Exception):
    """A write or read the cluster did not accept; .error is the core's code."""

    def __init__(self, error, leader=None):
        super().__init__("%s (%s)" % (error, leader))
        self.error = error
        self.leader = leader  # the known leader, or the detail of command_failed
        # Why, in words (command_failed, and membership refusals: the core
        # sends a reason for unsafe / invalid / conf_pending).
        self.reason = leader if isinstance(leader, str) and error not in RETRYABLE else None


class GuardedState:
    """Wraps the app's state class so a command its apply() rejects (raises
    on) becomes a failed write instead of an exception inside consensus.
    apply() is deterministic, so every replica fails the same way."""

    def __init__(self, state):
        self.state = state

    def apply(self, command):
        try:
            return self.state.apply(command)
        except Exception as e:
            return {FAILED: "%s: %s" % (type(e).__name__, e)}

    def snapshot(self):
        return self.state.snapshot()

    def restore(self, data):
        self.state.restore(data)


FAILED = "wraft_command_failed"


class _Waiter:
    # MicroPython's asyncio has Event but no usable Future across runtimes.
    def __init__(self):
        self.event = asyncio.Event()
        self.error = None
        self.value = None

    def resolve(self, error, value):
        self.error, self.value = error, value
        self.event.set()


class Driver:
    def __init__(self, node, log, transport, clock, size, restored=None, on_change=None):
        self.node = node
        self.log = log  # RecordLog
        self.transport = transport
        self.clock = clock  # () -> int ms, monotonic
        self.size = size  # the page's bootstrap size; quorums use node.voters (it changes)
        self.on_change = on_change  # fn(driver), after applies / role changes
        self.on_applied = None  # fn(first_index, entries) after each apply batch
        self.clients = None  # raft.browser.clients.ClientHub: client windows attached here
        self.restored = restored
        self.error = None  # set when the node halts
        self.running = False
        self.client_id = None
        self._seq = 0
        self._read_ctx = 0
        self._proposals = {}  # seq -> _Waiter
        self._reads = {}  # ctx -> _Waiter
        self._kick = asyncio.Event()
        self._draining = False
        self.last_write = None  # {"seq", "index", "committed", "error"}
        self.stats = {"dropped_garbage": 0, "dropped_spoofed": 0, "dropped_halted": 0,
                      "readies": 0, "persist_batches": 0}
        self._tasks = []

    # ---- wiring -------------------------------------------------------
    def start(self, client_id):
        self.client_id = client_id
        self.running = True
        loop = asyncio.get_event_loop()
        self._tasks = [loop.create_task(self._ticker()), loop.create_task(self._drainer())]
        self._notify()

    def stop(self):
        self.running = False
        for t in self._tasks:
            t.cancel()

    def on_message(self, peer, text):
        """Transport callback: validate, step, and let the drainer run soon."""
        if self.error is not None:
            self.stats["dropped_halted"] += 1
            return
        if self.clients is not None and is_client_id(peer):
            # A client window (raft/CLIENT.md): never Raft, whatever it sends.
            self.node.tick(self.clock())
            self.clients.on_message(peer, text)
            self._kick.set()
            return
        try:
            msg = codec.decode(text)
        except codec.DecodeError:
            self.stats["dropped_garbage"] += 1
            return
        # The channel tells us who sent it; a message claiming otherwise is
        # garbage as far as Raft is concerned.
        if msg[1] != peer:
            self.stats["dropped_spoofed"] += 1
            return
        self.node.tick(self.clock())  # the core knows the time only from tick
        self.node.step(msg)
        # Drain now rather than in the drainer task: waking a task costs a
        # setTimeout hop (clamped to 4 ms once timers nest), and an ack or a
        # follower's reply on the critical path of every write cannot wait.
        # Under load (many writes waiting here, or a big batch coming in)
        # the drainer task batches a burst instead: replying later lets the
        # leader send bigger batches, and one Ready persists many of them.
        if (self._draining or len(self._proposals) > SYNC_DRAIN_MAX_WAITING
                or len(text) > SYNC_DRAIN_MAX_CHARS):
            self._kick.set()
        else:
            self._drain()

    def on_peer(self, peer, up):
        if self.clients is not None and is_client_id(peer):
            self.clients.on_peer(peer, up)
            return
        if up:
            self.campaign_early()
        self._notify()

    def campaign_early(self):
        """Cold start: once channels to a quorum are up and no leader is
        known, run the (pre-)election within EARLY_ELECTION_MS instead of
        waiting out the full 1.5-3 s timeout counted from page load. The wait
        covers a heartbeat, so a window that joins a running cluster hears
        its leader first; PreVote makes an early campaign harmless anyway (a
        node in touch with a leader refuses it, and no term moves)."""
        n = self.node
        if n.role != "follower" or n.leader_id is not None or self.transport is None:
            return
        if n.id not in n.voters:  # learners and outsiders never campaign
            return
        # The live configuration, not the page's size: it may have grown.
        up = [p for p in self.transport.peers_up() if p in n.voters]
        if len(up) + 1 < len(n.voters) // 2 + 1:
            return
        lo, hi = EARLY_ELECTION_MS
        at = self.clock() + lo + int(n.rng() * (hi - lo))  # jittered: no split votes
        if at < n.election_deadline:
            n.election_deadline = at

    # ---- the Ready loop ----------------------------------------------
    async def _ticker(self):
        while self.running:
            if self.error is None:
                self.node.tick(self.clock())
                self._drain()
                if self.clients is not None and self.clients.subs:
                    self.clients.tick()  # catch-up and status of client windows
            await asyncio.sleep(TICK_MS / 1000)

    async def _drainer(self):
        while self.running:
            await self._kick.wait()
            self._kick.clear()
            self._drain()

    def _drain(self):
        if self.error is not None or self._draining:
            return
        self._draining = True  # a callback re-entering must not split a Ready
        try:
            while self.node.has_ready():
                rd = self.node.ready()
                self.stats["readies"] += 1
                if not self.persist(rd):
                    return
                self.send(rd)
                self.node.advance(rd)
                if rd.committed and self.on_applied is not None:
                    self.on_applied(rd.committed_from, rd.committed)
                if self.clients is not None and (rd.committed or rd.snapshot_installed):
                    self.clients.on_applied(rd.committed_from, rd.committed)
                self._note_committed(rd)
                self._resolve(rd)
        except Exception as e:  # a bug must show on the page, not kill the loop silently
            self._draining = False
            self.halt("internal error: %r" % (e,))
            raise
        finally:
            self._draining = False
        self._notify()

    def persist(self, rd):
        """Store hard state and entries before anything is sent (Raft §5)."""
        hs = rd.hard_state
        snap = rd.snapshot
        if not rd.entries and hs is None and snap is None:
            return True
        try:
            # One atomic step: a crash or a full quota at any point leaves
            # the old or the new state (raft/records.py).
            self.log.save_ready(rd)
            if snap is not None:
                self.stats["snapshots_saved"] = self.stats.get("snapshots_saved", 0) + 1
            if rd.entries:
                self.stats["persist_batches"] += 1
        except StorageFull as e:
            self.halt("localStorage is full: this node stopped and accepts no writes "
                      "(nothing it could not store was acknowledged). Free space and reload."
                      + (" (%s)" % e if str(e) else ""))
            return False
        return True

    def send(self, rd):
        for msg in rd.messages:
            self.transport.send(msg[2], codec.encode(msg))

    def _note_committed(self, rd):
        w = self.last_write
        if w is None or w.get("index") is not None:
            return
        # Results carry no index; find our entry among the committed ones.
        for i, e in enumerate(rd.committed):
            if e[1] == self.client_id and e[2] == w["seq"]:
                w["index"] = rd.committed_from + i
                w["committed"] = True

    def _resolve(self, rd):
        for client_id, seq, error, value in rd.results:
            if client_id != self.client_id:
                if self.clients is not None:
                    self.clients.on_result(client_id, seq, error, value)
                continue
            waiter = self._proposals.pop(seq, None)
            if waiter is not None:
                waiter.resolve(error, value)
        for ctx, error in rd.reads:
            waiter = self._reads.pop(ctx, None)
            if waiter is not None:
                waiter.resolve(error, None)
            elif self.clients is not None:
                self.clients.on_read(ctx, error)

    def halt(self, reason):
        """Stop for good: no more ticks, steps, sends or writes; fail waiters."""
        if self.error is None:
            self.error = reason
            print("wraft: node halted: " + reason)
        for table in (self._proposals, self._reads):
            for key in list(table):
                table.pop(key).resolve("halted", None)
        self._notify()

    # ---- client side --------------------------------------------------
    async def propose(self, command):
        """Replicate `command`; returns the app's apply() result once committed
        and applied here. Retries with the same (client, seq), so a command
        is applied at most once even when a retry races a late commit."""
        self._seq += 1
        seq = self._seq
        self.last_write = {"seq": seq, "index": None, "committed": False, "error": None}
        try:
            return await self._until_done(lambda: self._propose_once(seq, command))
        except ProposalError as e:
            if self.last_write.get("seq") == seq:
                self.last_write["error"] = e.error
            self._notify()
            raise

    def _propose_once(self, seq, command):
        waiter = _Waiter()
        self._proposals[seq] = waiter
        self.node.tick(self.clock())
        self.node.propose(self.client_id, seq, command)
        return waiter

    async def read(self):
        """Linearizable read (ReadIndex): returns once the local state is at
        least as new as anything committed before the call."""
        self._read_ctx += 1
        ctx = self._read_ctx
        await self._until_done(lambda: self._read_once(ctx))

    def _read_once(self, ctx):
        waiter = _Waiter()
        self._reads[ctx] = waiter
        self.node.tick(self.clock())
        self.node.read_index(ctx)
        return waiter

    async def _until_done(self, attempt, retry=None):
        """Run attempt() until it succeeds, or fails for good: an error that
        retry(error, value, started_ms) rejects (default: not RETRYABLE), or
        RETRY_WINDOW_MS went by."""
        start = self.clock()
        deadline = start + RETRY_WINDOW_MS
        while True:
            if self.error is not None:
                raise ProposalError("halted")
            waiter = attempt()
            self._kick.set()
            await waiter.event.wait()
            if waiter.error is None:
                v = waiter.value
                if isinstance(v, dict) and FAILED in v:
                    raise ProposalError("command_failed", v[FAILED])
                return v
            again = (waiter.error in RETRYABLE if retry is None
                     else retry(waiter.error, waiter.value, start))
            if not again or self.clock() >= deadline:
                raise ProposalError(waiter.error, waiter.value)
            await asyncio.sleep(RETRY_PAUSE_MS / 1000)

    async def change_membership(self, op, target):
        """One single-server membership change (raft/API.md): op is
        "add_learner", "promote" or "remove", target a node id. Returns the
        new configuration {"voters", "learners"} once applied here; raises
        ProposalError(error, reason) when refused ("unsafe", "invalid") or
        when no leader took it within RETRY_WINDOW_MS. Retries reuse the
        seq; a retry that finds the change already made counts as done (the
        first attempt committed but its answer was lost). A promotion refused
        because the learner is behind is retried for PROMOTE_RETRY_MS: under
        steady writes it is often an entry or two behind at that instant."""
        self._seq += 1
        seq = self._seq
        tries = [0]

        def attempt():
            tries[0] += 1
            return self._change_once(seq, op, target)
        def retry(error, reason, started):
            if error in CHANGE_RETRYABLE:
                return True
            return (op == "promote" and error == "unsafe" and isinstance(reason, str)
                    and NOT_CAUGHT_UP in reason and self.clock() - started < PROMOTE_RETRY_MS)
        try:
            return await self._until_done(attempt, retry)
        except ProposalError as e:
            if tries[0] > 1 and e.error == "invalid" and self._change_made(op, target):
                return {"voters": list(self.node.voters), "learners": list(self.node.learners)}
            raise

    def _change_once(self, seq, op, target):
        waiter = _Waiter()
        self._proposals[seq] = waiter
        self.node.tick(self.clock())
        self.node.change_membership(self.client_id, seq, op, target)
        return waiter

    def _change_made(self, op, target):
        n = self.node
        if op == "add_learner":
            return target in n.learners or target in n.voters
        if op == "promote":
            return target in n.voters
        if op == "remove":
            return target not in n.voters and target not in n.learners
        return False

    def retried_indexes(self):
        """Indexes in the last applied batch holding a retry of a command
        applied before (in the log twice, applied once)."""
        return self.node.retried_indexes

    # ---- what the status component shows ------------------------------
    def replicated_on(self, index):
        """(count, exact): how many nodes hold log index `index`. The leader
        knows each follower's match index; elsewhere a committed entry is
        known to be on a majority, which is the lower bound shown."""
        n = self.node
        voters = n.voters  # only voters count toward "on N of M"
        mine = 1 if n.id in voters and n.last_index() >= index else 0
        if n.role == "leader":
            return mine + sum(1 for pid, pr in n.progress.items()
                              if pid in voters and pr.match >= index), True
        if n.commit_index >= index:
            return max(mine, len(voters) // 2 + 1), False
        return mine, False

    def status(self):
        n = self.node
        info = {
            "node": n.id, "role": n.role, "term": n.term, "leader": n.leader_id,
            "commit": n.commit_index, "applied": n.applied_index, "last_index": n.last_index(),
            "quorum": bool(n.has_quorum) and self.error is None,
            "peers": self.transport.peers_up() if self.transport else [],
            "size": len(n.voters), "running": self.running, "error": self.error,
            "repaired": self.restored.repaired if self.restored else None,
            "last_write": None,
        }
        info.update(self.membership_status())
        w = self.last_write
        if w is not None:
            lw = {"committed": w["committed"], "error": w["error"]}
            if w["index"] is not None:
                lw["on"], lw["exact"] = self.replicated_on(w["index"])
            info["last_write"] = lw
        return info

    def membership_status(self):
        """The live configuration for the status panel: voters, learners,
        this node's membership, whether the latest change is committed, the
        windows of this cluster the introducer sees (client windows are not
        candidates for membership) and, on the leader, each member's match
        index and recent contact."""
        n = self.node
        present = [p for p in getattr(self.transport, "presence", None) or []
                   if not is_client_id(p)]
        return {
            "voters": list(n.voters), "learners": list(n.learners),
            "membership": n.membership, "config_committed": bool(n.config_committed),
            "present": present,
            "peer_status": n.peer_status() if n.role == "leader" else None,
        }

    def _notify(self):
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception as e:  # a rendering bug must not stop consensus
                print("wraft: on_change failed: %r" % (e,))


def node_storage(restored):
    """The Node constructor's `storage` from what open_log() found: None for
    a fresh node, else (hard state, entries after the snapshot[, snapshot]).
    The core restores the state from the snapshot, then re-applies the
    entries after it up to commit through the first Ready."""
    hs = [restored.term, restored.vote, restored.commit]
    if restored.snapshot is not None:
        snap = restored.snapshot
        return (hs, restored.entries, [snap[0], snap[1], snap[2]])
    if restored.entries or restored.term or restored.vote is not None:
        return (hs, restored.entries)
    return None


def open_log(kv, cluster, node):
    """Load this node's durable state; returns (log, restored) or raises
    DamagedStorage with a message fit to show to the user."""
    log = RecordLog(kv, cluster, node)
    restored = log.load()
    return log, restored
