"""ReadIndex: linearizable reads without a log write (Raft thesis §6.4; part
of Node, see raft/node.py).

The leader notes its commit index, confirms it still leads by a heartbeat
round that a majority of voters acknowledges, and the read is served once the
state machine has applied up to that index. A new leader first waits for an
entry of its own term to commit. Followers forward reads to the leader and
apply the same wait locally.

Every read gets an internal id (`rid`, never reused) and a deadline: it ends
with [ctx, None] or [ctx, error] in Ready.reads, at the latest with
"timeout" after request_timeout_ms, whatever stage it is in. A forwarded read
travels under a wire id made of a per-incarnation nonce and the rid, so a
duplicated or delayed reply (even one from before a restart) can never
complete another read.

State (set in Node.__init__): my_reads {rid: [ctx, deadline, wire id or
None]}; remote_reads {wire id: rid} (forwarded, no reply yet); local_reads
[[rid, index]] (wait until applied >= index); leader_reads [[round, id,
origin, index, deadline]] and reads_wait_noop [[id, origin, deadline]] on a
leader (id: a rid when origin is this node, else the origin's wire id);
read_round, read_seq, read_nonce.
"""
from .codec import read_reply, read_request
from .roles import LEADER


class ReadIndex:
    """read_index() and the leader's read rounds; a mixin of Node."""

    def read_index(self, ctx):
        if not ((type(ctx) is str and len(ctx) <= 128) or
                (type(ctx) is int and 0 <= ctx <= 9007199254740991)):
            self.reads_out.append([ctx, "invalid"])
            return
        if self.role != LEADER and self.leader_id is None:
            self.reads_out.append([ctx, "no_leader"])
            return
        self.read_seq += 1
        rid = self.read_seq
        deadline = self.now + self.cfg.request_timeout_ms
        if self.role == LEADER:
            self.my_reads[rid] = [ctx, deadline, None]
            self.leader_read_request(rid, self.id, deadline)
        else:
            wire = self._read_wire_id(rid)
            self.my_reads[rid] = [ctx, deadline, wire]
            self.remote_reads[wire] = rid
            self.msgs.append(read_request(self.id, self.leader_id, self.term, wire))

    def _read_wire_id(self, rid):
        if self.read_nonce is None:
            # Drawn at the first forwarded read (not at start: the clock of
            # elections keeps its random sequence). ~52 bits per incarnation.
            self.read_nonce = "%x%x" % (int(self.rng() * 67108864), int(self.rng() * 67108864))
        return "%s.%d" % (self.read_nonce, rid)

    def _finish_read(self, rid, error):
        r = self.my_reads.pop(rid, None)
        if r is not None:
            ctx, _, wire = r
            self.reads_out.append([ctx, error])
            if wire is not None:
                self.remote_reads.pop(wire, None)

    def leader_read_request(self, rid, origin, deadline):
        if self.term_at(self.commit_index) != self.term:
            # Our commit index is only known to be current once our no-op commits.
            self.reads_wait_noop.append([rid, origin, deadline])
        else:
            self._start_leader_read(rid, origin, deadline)

    def _start_leader_read(self, rid, origin, deadline):
        if not self.need_read_heartbeat:
            self.read_round += 1
            self.need_read_heartbeat = True
        self.leader_reads.append([self.read_round, rid, origin, self.commit_index, deadline])
        if self.quorum == 1 and self.self_voter:
            self._confirm_leader_reads()

    def _confirm_leader_reads(self):
        acks = [self.read_round] if self.self_voter else []
        for pr in self.voter_prs:
            acks.append(pr.read_ack)
        acks.sort()
        confirmed = acks[len(acks) - self.quorum]
        keep = []
        for r in self.leader_reads:
            rnd, rid, origin, index, _ = r
            if rnd <= confirmed:
                if origin == self.id:
                    self.local_reads.append([rid, index])
                else:
                    self.msgs.append(read_reply(self.id, origin, self.term, rid, index, None))
            else:
                keep.append(r)
        self.leader_reads = keep
        self._release_local_reads()

    def handle_forwarded_read(self, msg):
        _, src, _, _, wire = msg
        if self.role != LEADER:
            self.msgs.append(read_reply(self.id, src, self.term, wire, 0, "no_leader"))
        else:
            self.leader_read_request(wire, src, self.now + self.cfg.request_timeout_ms)

    def handle_read_reply(self, msg):
        _, _, _, _, wire, index, error = msg
        rid = self.remote_reads.pop(wire, None)
        if rid is None:
            self._count("dropped_stale_reply")   # not ours, a duplicate, or too late
            return
        if error is not None:
            self._finish_read(rid, error)
        else:
            self.local_reads.append([rid, index])
            self._release_local_reads()

    def _release_local_reads(self):
        if not self.local_reads:
            return
        keep = []
        applied = self.applied_index
        for r in self.local_reads:
            rid, index = r
            if index <= applied:
                self._finish_read(rid, None)
            elif rid in self.my_reads:
                keep.append(r)
        self.local_reads = keep

    def _fail_leader_reads(self, error):
        for _, rid, origin, _, _ in self.leader_reads:
            if origin == self.id:
                self._finish_read(rid, error)
        for rid, origin, _ in self.reads_wait_noop:
            if origin == self.id:
                self._finish_read(rid, error)
        self.leader_reads = []
        self.reads_wait_noop = []

    def _fail_forwarded_reads(self, error):
        """The leader we forwarded to is gone: those reads fail (retryable);
        reads that already hold their index stay valid and keep waiting."""
        waiting = self.remote_reads
        self.remote_reads = {}
        for wire in waiting:
            self._finish_read(waiting[wire], error)

    def _expire_reads(self):
        now = self.now
        for rid in [r for r in self.my_reads if self.my_reads[r][1] <= now]:
            self._finish_read(rid, "timeout")
        if self.leader_reads or self.reads_wait_noop:
            # Reads of other nodes held here: their origin times them out
            # itself; forget them so a leader cut off without CheckQuorum
            # does not pile them up.
            self.leader_reads = [r for r in self.leader_reads if r[4] > now]
            self.reads_wait_noop = [r for r in self.reads_wait_noop if r[2] > now]
