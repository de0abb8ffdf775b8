"""ReadIndex: linearizable reads without a log write (Raft thesis §6.4; part
of Node, see raft/node.py).

The leader notes its commit index, confirms it still leads by a heartbeat
round that a majority of voters acknowledges, and the read is served once the
state machine has applied up to that index. A new leader first waits for an
entry of its own term to commit. Followers forward reads to the leader and
apply the same wait locally.
"""
from .roles import LEADER


class ReadIndex:
    """read_index() and the leader's read rounds; a mixin of Node."""

    def read_index(self, ctx):
        if not ((type(ctx) is str and len(ctx) <= 128) or
                (type(ctx) is int and 0 <= ctx <= 9007199254740991)):
            self.reads_out.append([ctx, "invalid"])
            return
        if self.role == LEADER:
            self.leader_read_request(ctx, self.id)
        elif self.leader_id is None:
            self.reads_out.append([ctx, "no_leader"])
        else:
            self.remote_reads[ctx] = self.now + self.cfg.request_timeout_ms
            self.msgs.append(["r", self.id, self.leader_id, self.term, ctx])

    def leader_read_request(self, ctx, origin):
        if self.term_at(self.commit_index) != self.term:
            # Our commit index is only known to be current once our no-op commits.
            self.reads_wait_noop.append([ctx, origin])
        else:
            self._start_leader_read(ctx, origin)

    def _start_leader_read(self, ctx, origin):
        if not self.need_read_heartbeat:
            self.read_round += 1
            self.need_read_heartbeat = True
        self.leader_reads.append([self.read_round, ctx, origin, self.commit_index])
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
            if r[0] <= confirmed:
                if r[2] == self.id:
                    self.local_reads.append([r[1], r[3]])
                else:
                    self.msgs.append(["rr", self.id, r[2], self.term, r[1], r[3], None])
            else:
                keep.append(r)
        self.leader_reads = keep
        self._release_local_reads()

    def handle_forwarded_read(self, msg):
        if self.role != LEADER:
            self.msgs.append(["rr", self.id, msg[1], self.term, msg[4], 0, "no_leader"])
        else:
            self.leader_read_request(msg[4], msg[1])

    def handle_read_reply(self, msg):
        ctx = msg[4]
        if ctx not in self.remote_reads:
            self._count("dropped_stale_reply")
            return
        del self.remote_reads[ctx]
        if msg[6] is not None:
            self.reads_out.append([ctx, msg[6]])
        else:
            self.local_reads.append([ctx, msg[5]])
            self._release_local_reads()

    def _release_local_reads(self):
        if not self.local_reads:
            return
        keep = []
        for r in self.local_reads:
            if r[1] <= self.applied_index:
                self.reads_out.append([r[0], None])
            else:
                keep.append(r)
        self.local_reads = keep

    def _fail_leader_reads(self, error):
        for r in self.leader_reads:
            if r[2] == self.id:
                self.reads_out.append([r[1], error])
        for r in self.reads_wait_noop:
            if r[1] == self.id:
                self.reads_out.append([r[0], error])
        self.leader_reads = []
        self.reads_wait_noop = []
