"""Tunables of one Raft node (plain class: MicroPython has no dataclasses)."""


class Config:
    """Timings are integer milliseconds of the clock passed to Node.tick."""

    def __init__(self, election_min_ms=1500, election_max_ms=3000,
                 heartbeat_ms=100, max_entries_per_msg=512,
                 max_bytes_per_msg=60000, max_inflight=8,
                 max_uncommitted=8192, pre_vote=True, check_quorum=True,
                 request_timeout_ms=None, session_window=256,
                 snapshot_entries=10000, snapshot_bytes=1048576,
                 max_voters=7, max_learners=16, max_sessions=1024):
        if not (0 < heartbeat_ms < election_min_ms < election_max_ms):
            raise ValueError("need 0 < heartbeat_ms < election_min_ms < election_max_ms")
        if max_entries_per_msg < 1 or max_inflight < 1 or max_uncommitted < 1:
            raise ValueError("batch, inflight and uncommitted limits must be >= 1")
        # Each encoded AppendEntries must stay under 64 KiB (data-channel limit).
        if not (1000 <= max_bytes_per_msg <= 64000):
            raise ValueError("max_bytes_per_msg must be within 1000..64000")
        if session_window < 1 or max_sessions < 1:
            raise ValueError("session_window and max_sessions must be >= 1")
        self.election_min_ms = election_min_ms
        self.election_max_ms = election_max_ms
        self.heartbeat_ms = heartbeat_ms
        self.max_entries_per_msg = max_entries_per_msg
        self.max_bytes_per_msg = max_bytes_per_msg
        self.max_inflight = max_inflight
        self.max_uncommitted = max_uncommitted
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        if request_timeout_ms is None:
            request_timeout_ms = 2 * election_max_ms
        self.request_timeout_ms = request_timeout_ms
        self.session_window = session_window
        # Clients whose sessions are kept; the least recently used expires
        # beyond that (raft/sessions.py).
        self.max_sessions = max_sessions
        # Log compaction: snapshot once this many applied entries (or bytes of
        # them, as compact JSON) sit in the log; 0 turns a trigger off.
        if snapshot_entries < 0 or snapshot_bytes < 0:
            raise ValueError("snapshot thresholds must be >= 0")
        self.snapshot_entries = snapshot_entries
        self.snapshot_bytes = snapshot_bytes
        # Membership changes are refused beyond these sizes.
        if not (1 <= max_voters <= 64 and 0 <= max_learners <= 64):
            raise ValueError("max_voters must be within 1..64, max_learners within 0..64")
        self.max_voters = max_voters
        self.max_learners = max_learners
