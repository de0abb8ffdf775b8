"""What a leader knows about one follower's log (etcd-style Progress)."""

PROBE = 0       # one AppendEntries at a time until we find where logs match
REPLICATE = 1   # optimistic: pipeline up to max_inflight batches
SNAPSHOT = 2    # the entries it needs are compacted: send the snapshot in chunks


class Progress:
    def __init__(self, next_index, now):
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.probe_sent = False
        self.inflight = []        # last index of each unacknowledged batch
        self.last_heard = now     # ms; CheckQuorum counts recently heard peers
        # ms of the last reply really received (last_heard starts at the
        # election as a grace period): membership safety checks use this.
        self.last_reply = -(1 << 62)
        self.read_ack = 0         # highest ReadIndex round this peer confirmed
        self.snap_index = 0       # SNAPSHOT: index of the snapshot being sent
        self.snap_offset = 0      # SNAPSHOT: byte offset the follower asked for

    def become_probe(self, next_index):
        self.state = PROBE
        self.probe_sent = False
        self.inflight = []
        self.next = max(next_index, self.match + 1)

    def become_replicate(self):
        self.state = REPLICATE
        self.probe_sent = False
        self.inflight = []
        self.next = self.match + 1

    def free_inflight_upto(self, index):
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.pop(0)

    def become_snapshot(self, snap_index):
        self.state = SNAPSHOT
        self.probe_sent = False
        self.inflight = []
        self.snap_index = snap_index
        self.snap_offset = 0
