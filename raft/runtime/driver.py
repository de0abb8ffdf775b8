"""The member runtime: runs one raft.Node in a window or a replica
(raft/runtime/contract.py has the contract it implements for the App handle).

Loop (raft/API.md): tick -> Ready -> persist -> send -> advance (apply) ->
resolve proposal and ReadIndex waiters. Nothing that depends on a Ready is
sent before its hard state and entries are stored, so a node never
acknowledges what it could not persist; when storage is full the node halts
(offline, visible error) instead. The one exception is the leader's own
AppendEntries (Raft thesis §10.2.1): they go out before its log write, so
the followers store the entries while the leader does; the leader counts
itself toward a majority only once advance() says its write is done.

This module imports neither js nor pyscript: the clock, the record log and
the transport are passed in (raft/browser/app.py and raft/replica/host.py
wire the real ones), so the same code runs under MicroPython, Pyodide and
CPython.
"""

import asyncio

from raft import codec
from raft.client import is_client_id
from raft.records import RecordLog, StorageFull
from raft.runtime.contract import (RETRY_PAUSE_MS, RETRYABLE, Group, ProposalError, Runtime,
                                   Waiter, all_or_first_error, new_client_id, outcome)

# How often the core is ticked. Heartbeats are 100 ms and elections 1.5-3 s;
# hidden tabs may stretch this to 1 s, which those timeouts tolerate.
TICK_MS = 25
# A membership change also waits out the previous one (one at a time), and a
# promotion a learner that is a few entries behind (it acks within a round trip).
NOT_CAUGHT_UP = "is not caught up"  # in the core's reason (raft/membership.py)
CHANGE_RETRYABLE = RETRYABLE + ("conf_pending",)
PROMOTE_RETRY_MS = 2000
# on_message drains at once while at most this many writes wait here.
SYNC_DRAIN_MAX_WAITING = 4
SYNC_DRAIN_MAX_CHARS = 1000  # ... and the message is this short (not a big batch)
# Early first election (campaign_early): after a heartbeat (100 ms) plus
# jitter while only a quorum is up; with every voter up, at once for the
# lowest id, then one step per rank (no split vote, no random wait).
EARLY_ELECTION_MS = (150, 450)
# After the leader's channel closed (on_peer): campaign this soon, staggered
# by rank among the voters left, so the first PreVote usually wins alone.
RANK_STEP_MS = 200
FAILOVER_MS = 20


def same_entries(a, b):
    """The same log entries (the objects, not just equal ones: cheap)."""
    if a is None or len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is not y:
            return False
    return True


class Driver(Runtime):
    """The member runtime: drives `node` (raft.Node), persisting to `log`
    (raft.records.RecordLog) and sending through `transport` (send(peer,
    text) -> bool, peers_up(), presence). rand() -> [0, 1) makes the page's
    next client id when its session expires (default: the node's rng)."""

    def __init__(self, node, log, transport, clock, restored=None, on_change=None, rand=None):
        Runtime.__init__(self, clock)
        self.rand = rand if rand is not None else node.rng
        self.node = node
        self.log = log
        self.transport = transport
        self.on_change = on_change
        self.clients = None  # raft.runtime.client_hub.ClientHub: client windows attached here
        self.restored = restored
        self.client_id = None  # session id of this page's own writes
        self._seq = 0
        self._read_ctx = 0
        self._wake = asyncio.Event()
        self._draining = False
        # The term in storage: AppendEntries of that term may leave before the
        # Ready's own write (never those of a term not stored yet).
        self._stored_term = node.term
        self._timed = None  # self.timings when it times phases, else None (the fast path)
        # Malformed or spoofed Raft text is counted in node.stats (raft/API.md).
        self.stats = {"dropped_halted": 0, "readies": 0, "persist_batches": 0}

    # ---- wiring -------------------------------------------------------
    def start(self, client_id):
        self.client_id = client_id
        self.running = True
        loop = asyncio.get_event_loop()
        self._tasks = [loop.create_task(self._ticker()), loop.create_task(self._drainer())]
        self._notify()

    def on_message(self, peer, text):
        """Transport callback: the node takes the text (raft/API.md receive:
        decoded and checked once, dropped unless it comes from `peer`), then
        the drainer runs soon."""
        if self.error is not None:
            self.stats["dropped_halted"] += 1
            return
        if self.clients is not None and is_client_id(peer):
            # A client window (raft/CLIENT.md): never Raft, whatever it sends.
            self._tick()
            self.clients.on_message(peer, text)
            self._wake.set()
            return
        self._tick()  # the core knows the time only from tick
        t = self._timed
        kind = self.node.receive(text, peer) if t is None else t.run(
            "step", self.node.receive, text, peer)
        if kind is None:
            return  # dropped (counted in node.stats)
        if self.timings is not None:
            self.timings.saw(kind)
        # Drain now rather than in the drainer task: waking a task costs a
        # setTimeout hop (clamped to 4 ms once timers nest), and an ack or a
        # follower's reply on the critical path of every write cannot wait.
        # Under load (many writes waiting here, or a big batch coming in)
        # the drainer task batches a burst instead: replying later lets the
        # leader send bigger batches, and one Ready persists many of them.
        if (self._draining or len(self._proposals) > SYNC_DRAIN_MAX_WAITING
                or len(text) > SYNC_DRAIN_MAX_CHARS):
            self._wake.set()
        else:
            self._drain()

    def on_peer(self, peer, up):
        if self.clients is not None and is_client_id(peer):
            self.clients.on_peer(peer, up)
            return
        if up:
            self.campaign_early()
        elif peer == self.node.leader_id:
            self.campaign_after_leader_left(peer)
        self._notify()

    def _rank(self, absent=None):
        """Our place among the voters (string order), leaving out `absent`."""
        voters = [v for v in self.node.voters if v != absent]
        return voters.index(self.node.id) if self.node.id in voters else len(voters)

    def campaign_after_leader_left(self, leader):
        """The leader's channel closed (its window went away): campaign
        within FAILOVER_MS + rank * RANK_STEP_MS instead of the full
        election timeout. A leader that only hangs keeps its channel open
        (its SCTP still answers), so that case takes the timeout path, as do
        hidden tabs whose timers are throttled."""
        n = self.node
        n.leader_unreachable(self.clock() + FAILOVER_MS + self._rank(leader) * RANK_STEP_MS)
        self.stats["leader_channel_closed"] = self.stats.get("leader_channel_closed", 0) + 1

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
        if len(up) + 1 == len(n.voters):
            at = self.clock() + self._rank() * RANK_STEP_MS  # everyone is here
        else:
            lo, hi = EARLY_ELECTION_MS
            at = self.clock() + lo + int(n.rng() * (hi - lo))  # jittered: no split votes
        if at < n.election_deadline:
            n.election_deadline = at

    def instrument(self, timings):
        Runtime.instrument(self, timings)
        self._timed = timings if timings is not None and timings.phases else None

    # ---- the Ready loop ----------------------------------------------
    def _tick(self):
        t = self._timed
        if t is None:
            self.node.tick(self.clock())
        else:
            t.run("tick", self.node.tick, self.clock())

    def _kick(self):
        self._wake.set()

    async def _ticker(self):
        while self.running:
            if self.error is None:
                self._tick()
                self._drain()
                self.flush_commit()
                if self.clients is not None and self.clients.subs:
                    self.clients.tick()  # catch-up and status of client windows
                self.expire(self.clock())
            await asyncio.sleep(TICK_MS / 1000)

    async def _drainer(self):
        while self.running:
            await self._wake.wait()
            self._wake.clear()
            self._drain()

    def _drain(self):
        t = self._timed
        if t is None:
            self._drain_readies()
        else:
            t.run("drain", self._drain_readies)

    def _drain_readies(self):
        if self.error is not None or self._draining:
            return
        self._draining = True  # a callback re-entering must not split a Ready
        node, t = self.node, self._timed
        try:
            while node.has_ready():
                rd = node.ready() if t is None else t.run("ready", node.ready)
                self.stats["readies"] += 1
                rest = (self.send_appends_early(rd) if t is None
                        else t.run("send", self.send_appends_early, rd))
                if not (self.persist(rd) if t is None else t.run("persist", self.persist, rd)):
                    return
                if t is None:
                    self.send(rest)
                    node.advance(rd)
                else:
                    t.run("send", self.send, rest)
                    t.run("advance", node.advance, rd)
                if rd.committed and self.on_applied is not None:
                    self.on_applied(rd.committed_from, rd.committed)
                if self.clients is not None and (rd.committed or rd.snapshot_installed):
                    self.clients.on_applied(rd.committed_from, rd.committed)
                self._note_committed(rd)
                self._hand_out(rd)
        except Exception as e:  # a bug must show on the page, not kill the loop silently
            self._draining = False
            self.halt("internal error: %r" % (e,))
            raise
        finally:
            self._draining = False
        if t is None:
            self._notify()
        else:
            t.run("on_change", self._notify)

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
            if hs is not None:
                self._stored_term = hs[0]
        except StorageFull as e:
            self._storage_full(e)
            return False
        return True

    def flush_commit(self):
        """Store the commit index that Readies moving only it left in memory
        (RecordLog lazy_commit): once per tick instead of once per commit."""
        if getattr(self.log, "commit_due", None) is None or self.error is not None:
            return
        try:
            self.log.flush_commit()
        except StorageFull as e:
            self._storage_full(e)

    def _storage_full(self, e):
        self.halt("localStorage is full: this node stopped and accepts no writes "
                  "(nothing it could not store was acknowledged). Free space and reload."
                  + (" (%s)" % e if str(e) else ""))

    def send_appends_early(self, rd):
        """Leader, Raft thesis §10.2.1: send the AppendEntries of a Ready that
        has entries to store before storing them, so the followers' writes
        run beside ours. Safe because the leader counts its own entries only
        after advance(), and the term they carry is already stored (a term
        not yet stored could be reused after a crash). Returns the messages
        still to send once the Ready is persisted."""
        msgs = rd.messages
        if not rd.entries or not msgs or self.node.role != "leader":
            return msgs
        term = self._stored_term
        early = [m for m in msgs if m[0] == "a" and m[3] == term]
        if not early:
            return msgs
        self.send(early)
        self.stats["sent_before_persist"] = self.stats.get("sent_before_persist", 0) + len(early)
        return [m for m in msgs if not (m[0] == "a" and m[3] == term)]

    def send(self, msgs):
        send, t = self.transport.send, self._timed
        last = text = None  # the entries of the last AppendEntries, and their JSON
        for msg in msgs:
            ents = msg[6] if msg[0] == "a" else None
            if ents:
                # The followers usually get the same entries: encode them once.
                if last is not ents and not same_entries(last, ents):
                    last, text = ents, codec.compact(ents)
                wire = codec.encode_append(msg, text)
            else:
                wire = codec.encode(msg)
            if t is None:
                send(msg[2], wire)
            else:
                t.run("transport_send", send, msg[2], wire)

    def _note_committed(self, rd):
        w = self.last_write
        if w is None or w.get("index") is not None:
            return
        # Results carry no index; find our entry among the committed ones.
        for i, e in enumerate(rd.committed):
            if e[1] == self.client_id and e[2] == w["seq"]:
                w["index"] = rd.committed_from + i
                w["committed"] = True

    def _hand_out(self, rd):
        """Results and reads to the waiters of this page, or of its clients."""
        for client_id, seq, error, value in rd.results:
            if client_id == self.client_id:
                self._resolve(self._proposals, seq, error, value)
                if error == "session_expired" and not self.node.has_session(client_id):
                    self.start_new_session()
            elif self.clients is not None:
                self.clients.on_result(client_id, seq, error, value)
        for ctx, error in rd.reads:
            if not self._resolve(self._reads, ctx, error) and self.clients is not None:
                self.clients.on_read(ctx, error)

    def halt(self, reason):
        """Stop for good: no more ticks, steps, sends or writes; fail waiters."""
        if self.error is None:
            self.error = reason
            print("wraft: node halted: " + reason)
        self._fail_all("halted")
        self._notify()

    def start_new_session(self):
        """The cluster forgot this page's session (raft/API.md, session
        expiry): every write still waiting under it ends the same way (it
        may or may not have been applied), and the page goes on as a new
        client: a new client id, seq 1 again."""
        self.client_id = new_client_id(self.rand)
        self._seq = 0
        for seq in list(self._proposals):
            self._proposals.pop(seq).resolve("session_expired")
        self.stats["new_sessions"] = self.stats.get("new_sessions", 0) + 1

    # ---- requests from the page ----------------------------------------
    @property
    def applied_index(self):
        return self.node.applied_index

    async def propose(self, command):
        """Replicate `command`; returns the app's apply() result once committed
        and applied here. Retries with the same (client, seq), so a command
        is applied at most once even when a retry races a late commit.

        The hot path of pipelined writes, so it is _tracked_write(),
        _until_done() and _write() folded into one coroutine (the same
        steps: the page's last write, a deadline on every wait, retries of
        RETRYABLE errors after RETRY_PAUSE_MS while younger than RETRY_MS),
        with one clock read per try and no closure per write."""
        self._seq += 1
        seq, client = self._seq, self.client_id
        w = self.last_write = {"seq": seq, "index": None, "committed": False, "error": None}
        try:
            value = await self._propose(client, seq, command)
        except ProposalError as e:
            w["error"] = e.error
            self._notify()
            raise
        if not w["committed"]:
            # (usually set already: _note_committed saw the entry in the
            # drain that resolved it, and that drain notified)
            w["committed"] = True
            self._notify()
        return value

    async def _propose(self, client, seq, command):
        node, table = self.node, self._proposals
        start = now = self.clock()
        deadline = start + self.DEADLINE_MS
        while True:
            if self.error is not None:
                raise ProposalError("halted")
            if client != self.client_id:
                raise ProposalError("session_expired")  # the cluster forgot the session
            waiter = table[seq] = Waiter(deadline)
            t = self._timed
            if t is None:
                if now > node.now:  # the core needs the time only when it moved
                    node.tick(now)
                node.propose(client, seq, command)
            else:
                t.run("tick", node.tick, now)
                t.run("propose", node.propose, client, seq, command)
            self._wake.set()
            await waiter.event.wait()
            error = waiter.error
            if error is None:
                v = outcome(waiter)  # the value, or the app's apply() failure
                if isinstance(v, ProposalError):
                    raise v
                return v
            now = self.clock()
            if now >= deadline or not self._retry(error, waiter.value, start):
                raise ProposalError(error, waiter.value)
            await asyncio.sleep(RETRY_PAUSE_MS / 1000)
            now = self.clock()

    async def propose_many(self, commands):
        """Replicate a burst of commands (a paste of many lines, a bulk edit)
        in one go: each is its own write with its own seq, proposed in one
        turn (one Ready, one log record, one AppendEntries per follower),
        with one wake-up for the whole batch instead of one per write.
        Returns apply()'s results in order; if any failed for good, raises
        the first ProposalError once all are settled (.results: each
        outcome, a value or a ProposalError). Retryable failures are retried
        with the same seq, as propose() does."""
        commands = list(commands)
        seqs = []
        for _ in commands:
            self._seq += 1
            seqs.append(self._seq)
        return await self._tracked_write(self._batch(self.client_id, commands, seqs),
                                         seqs[-1] if seqs else None)

    async def _batch(self, client, commands, seqs):
        start = self.clock()
        deadline = start + self.DEADLINE_MS
        out = [None] * len(commands)
        todo = list(range(len(commands)))
        while todo:
            if self.error is not None or client != self.client_id:
                # halted, or the cluster forgot this session (start_new_session)
                why = "halted" if self.error is not None else "session_expired"
                for i in todo:
                    out[i] = ProposalError(why)
                break
            group = Group(len(todo))
            waiting = []
            self._tick()
            propose, table = self.node.propose, self._proposals
            for i in todo:
                w = table[seqs[i]] = Waiter(deadline, group)
                waiting.append((i, w))
                propose(client, seqs[i], commands[i])
            self._kick()
            await group.event.wait()
            todo = []
            for i, w in waiting:
                if (w.error is not None and self.clock() < deadline
                        and self._retry(w.error, w.value, start)):
                    todo.append(i)
                else:
                    out[i] = outcome(w)
            if todo:
                await asyncio.sleep(RETRY_PAUSE_MS / 1000)
        return all_or_first_error(out)

    async def read(self):
        """Linearizable read (ReadIndex): returns once the local state is at
        least as new as anything committed before the call."""
        self._read_ctx += 1
        ctx = self._read_ctx
        await self._until_done(
            lambda deadline: self._attempt(self._reads, ctx, deadline, "read_index",
                                           self.node.read_index, ctx))

    def _write(self, client, seq, deadline, request, *args):
        """One try of write `seq` of session `client`; ends at once when the
        cluster forgot that session since (start_new_session)."""
        if client != self.client_id:
            raise ProposalError("session_expired")
        return self._attempt(self._proposals, seq, deadline, "propose", request, client, seq,
                             *args)

    def _attempt(self, table, key, deadline, label, request, *args):
        """One try of a request to the core; its outcome comes in a Ready."""
        waiter = self._wait(table, key, deadline)
        self._tick()
        if self._timed is None:
            request(*args)
        else:
            self._timed.run(label, request, *args)
        return waiter

    async def change_membership(self, op, target):
        """One single-server membership change (raft/API.md): op is
        "add_learner", "promote" or "remove", target a node id. Returns the
        new configuration {"voters", "learners"} once applied here; raises
        ProposalError(error, reason) when refused ("unsafe", "invalid") or
        when no leader took it within RETRY_MS. Retries reuse the seq; a
        retry that finds the change already made counts as done (the first
        attempt committed but its answer was lost). A promotion refused
        because the learner is behind is retried for PROMOTE_RETRY_MS: under
        steady writes it is often an entry or two behind at that instant."""
        self._seq += 1
        seq, client = self._seq, self.client_id
        tries = [0]

        def attempt(deadline):
            tries[0] += 1
            return self._write(client, seq, deadline, self.node.change_membership, op, target)

        def retry(error, reason, started):
            if error in CHANGE_RETRYABLE:
                return self.clock() - started < self.RETRY_MS
            return (op == "promote" and error == "unsafe" and isinstance(reason, str)
                    and NOT_CAUGHT_UP in reason and self.clock() - started < PROMOTE_RETRY_MS)
        try:
            return await self._until_done(attempt, retry)
        except ProposalError as e:
            if tries[0] > 1 and e.error == "invalid" and self._change_made(op, target):
                return {"voters": list(self.node.voters), "learners": list(self.node.learners)}
            raise

    def _change_made(self, op, target):
        n = self.node
        if op == "add_learner":
            return target in n.learners or target in n.voters
        if op == "promote":
            return target in n.voters
        if op == "remove":
            return target not in n.voters and target not in n.learners
        return False

    # ---- what the status panel shows ----------------------------------
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
                lw["on"], lw["exact"] = n.replicated_on(w["index"])
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

    def diagnostics(self):
        tr = self.transport
        return {"driver_stats": self.stats, "node_stats": self.node.stats,
                "transport_stats": getattr(tr, "stats", None),
                "introducer_up": bool(getattr(tr, "introducer_up", False)),
                "client_hub_stats": self.clients.stats if self.clients is not None else None}


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


def open_log(kv, cluster, node, lazy_commit=False):
    """Load this node's durable state; returns (log, restored) or raises
    DamagedStorage with a message fit to show to the user. lazy_commit: see
    RecordLog (the driver's ticker then stores the commit index)."""
    log = RecordLog(kv, cluster, node, lazy_commit)
    restored = log.load()
    return log, restored
