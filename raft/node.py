"""The sans-IO Raft node (RawNode style). See raft/API.md for the contract.

Handlers are named after the rules of the Raft paper (and raftscope):
start_pre_vote, start_election, become_leader, advance_commit_index,
handle_request_vote_request, handle_append_entries_request, ...
"""
import json

from .codec import problem, decode, DecodeError, client_problem, json_size, entries_problem
from .config import Config
from .kv import KVStateMachine
from .progress import Progress, PROBE, REPLICATE, SNAPSHOT
from .rng import Rng, seed_from_text
from .sessions import Sessions

FOLLOWER = "follower"
PRECANDIDATE = "precandidate"
CANDIDATE = "candidate"
LEADER = "leader"

NOOP = None  # client id of the no-op entry a new leader appends
_SEP = (",", ":")
_MSG_OVERHEAD = 200  # bytes of an AppendEntries besides its entries (ids, ints)
_FOREVER = 1 << 62
# A new commit index reaches idle followers within this long (ms).
COMMIT_NOTIFY_MS = 10
_MEASURE_EVERY = 64        # applied entries between two byte measurements of the log
_MAX_SNAPSHOT = 64 << 20   # chars: an incoming snapshot larger than this is refused


def _utf8_len(text):
    # Bytes, not characters: MicroPython's json.dumps does not escape non-ASCII.
    return len(text.encode())


class Ready:
    """What the driver must do: persist, send, then call node.advance(rd)."""

    def __init__(self):
        self.hard_state = None
        self.entries_from = 0
        self.entries = []
        self.messages = []
        self.committed_from = 0
        self.committed = []
        self.results = []
        self.reads = []
        # Log compaction: [index, term, data] to store (atomically) before the
        # log records it covers are deleted; None when there is no new one.
        self.snapshot = None
        self.snapshot_installed = False   # came from the leader: state machine replaced
        self.log_discarded = False        # delete every stored entry (log replaced)


class Node:
    def __init__(self, node_id, voters, config=None, rng=None,
                 state_machine=None, storage=None, now_ms=0):
        if type(node_id) is not str or not 0 < len(node_id) <= 64:
            raise ValueError("node id must be a non-empty str of <= 64 chars")
        for v in voters:
            if type(v) is not str or not 0 < len(v) <= 64:
                raise ValueError("voter ids must be non-empty str of <= 64 chars")
        voters = sorted(set(voters))
        if node_id not in voters:
            raise ValueError("voters must include the node itself")
        self.id = node_id
        self.voters = voters                       # the one place for membership
        self.peers = [v for v in voters if v != node_id]
        self.quorum = len(voters) // 2 + 1
        self.cfg = config or Config()
        self.rng = rng or Rng(seed_from_text(node_id)).random
        self.state_machine = state_machine if state_machine is not None else KVStateMachine()
        self.sessions = Sessions(self.cfg.session_window)
        self.stats = {}

        # persistent state. log[0] is a sentinel holding the term of index
        # `offset`, the last index covered by the snapshot (0: none yet).
        self.offset = 0
        self.log = [[0, NOOP, 0, None]]
        self.term = 0
        self.vote = None
        self.commit_index = 0
        self.applied_index = 0
        self.snapshot = None       # [index, term, data]: the latest snapshot
        self.snap_blob = None      # its JSON text, made when a follower needs it
        self.snap_out = None       # snapshot the driver has not persisted yet
        self.snap_installed = False
        self.snap_discard_log = False
        self.snap_in = None        # follower: [index, term, [chunks], size] being received
        self.log_bytes = 0         # compact-JSON bytes of applied entries since the snapshot
        self.measured_upto = 0
        if storage is not None:
            self._load(storage)
        self._saved_hs = (self.term, self.vote, self.commit_index)
        self.unstable_from = len(self.log) + self.offset   # all of the log is stored

        # volatile state
        self.now = now_ms
        self.role = FOLLOWER
        self.leader_id = None
        self.last_leader_contact = -_FOREVER
        self.votes = {}
        self.progress = {}
        self.msgs = []
        self.results = []
        self.reads_out = []
        self.pending = {}          # (client, seq) -> deadline: proposals made here
        self.remote_reads = {}     # ctx -> deadline: reads forwarded to the leader
        self.local_reads = []      # [ctx, index]: wait until applied >= index
        self.leader_reads = []     # leader: [round, ctx, origin, index]
        self.reads_wait_noop = []  # leader: [ctx, origin] until a current-term commit
        self.read_round = 0
        self.need_bcast = False
        self.need_read_heartbeat = False
        self.heartbeat_deadline = _FOREVER
        self.commit_notify_at = _FOREVER  # leader: when to broadcast a new commit index
        self.next_expiry_check = now_ms + self.cfg.heartbeat_ms
        self.reset_election_timer()

    def _load(self, storage):
        if type(storage) not in (list, tuple) or len(storage) not in (2, 3):
            raise ValueError("storage must be (hard_state, entries[, snapshot])")
        hs = storage[0]
        entries = storage[1]
        snap = storage[2] if len(storage) == 3 else None
        if type(hs) not in (list, tuple) or len(hs) != 3:
            raise ValueError("hard state must be [term, vote, commit]")
        term, vote, commit = hs
        if type(term) is not int or term < 0 or type(commit) is not int or commit < 0:
            raise ValueError("bad persisted hard state")
        if vote is not None and vote not in self.voters:
            raise ValueError("persisted vote for an unknown node")
        if type(entries) is not list:
            raise ValueError("persisted log must be a list of entries")
        s_index = 0
        s_term = 0
        if snap is not None:
            if (type(snap) not in (list, tuple) or len(snap) != 3 or
                    type(snap[0]) is not int or snap[0] < 1 or
                    type(snap[1]) is not int or not 0 < snap[1] <= term or
                    type(snap[2]) is not dict or snap[2].get("index") != snap[0]):
                raise ValueError("bad persisted snapshot")
            s_index = snap[0]
            s_term = snap[1]
            if commit < s_index:
                commit = s_index          # a snapshot only ever covers committed entries
        if commit > s_index + len(entries):
            raise ValueError("persisted commit index beyond the persisted log")
        err = entries_problem(entries, s_term, term, True, None)
        if err is not None:
            raise ValueError("bad persisted log: " + err)
        self.term = term
        self.vote = vote
        self.commit_index = commit
        self.offset = s_index
        self.log = [[s_term, NOOP, 0, None]] + [list(e) for e in entries]
        if snap is not None:
            try:
                self.restore_state(snap[2])
            except Exception as e:
                raise ValueError("persisted snapshot does not restore: %r" % (e,))
            self.snapshot = [s_index, s_term, snap[2]]
            self.applied_index = s_index
            self.measured_upto = s_index

    # ---------------------------------------------------------------- log helpers
    def last_index(self):
        return self.offset + len(self.log) - 1

    def term_at(self, index):
        return self.log[index - self.offset][0]

    def _count(self, key):
        self.stats[key] = self.stats.get(key, 0) + 1

    @property
    def has_quorum(self):
        """False means: no leader we can trust right now (apps go read-only)."""
        if self.role == LEADER:
            return self._recent_active_count() >= self.quorum
        return (self.leader_id is not None and
                self.now - self.last_leader_contact < self.cfg.election_min_ms)

    # ---------------------------------------------------------------- timers
    def reset_election_timer(self):
        lo = self.cfg.election_min_ms
        span = self.cfg.election_max_ms - lo
        self.election_deadline = self.now + lo + int(self.rng() * span)

    def next_deadline(self):
        """Earliest now_ms at which tick() has something to do (for drivers)."""
        if self.role == LEADER:
            d = min(self.heartbeat_deadline, self.commit_notify_at)
        else:
            d = self.election_deadline
        if (self.pending or self.remote_reads) and self.next_expiry_check < d:
            d = self.next_expiry_check
        return d

    def tick(self, now_ms):
        if now_ms > self.now:
            self.now = now_ms
        now = self.now
        if self.role == LEADER:
            if now >= self.commit_notify_at:
                self.commit_notify_at = _FOREVER
                self.need_bcast = True
            if now >= self.heartbeat_deadline:
                self.broadcast_heartbeat()
                if self.cfg.check_quorum:
                    self.check_quorum()
        elif now >= self.election_deadline:
            if self.cfg.pre_vote:
                self.start_pre_vote()
            else:
                self.start_election()
        if now >= self.next_expiry_check:
            self.next_expiry_check = now + self.cfg.heartbeat_ms
            self._expire_requests()

    def _expire_requests(self):
        now = self.now
        for key in [k for k in self.pending if self.pending[k] <= now]:
            del self.pending[key]
            self.results.append([key[0], key[1], "timeout", self.leader_id])
        for ctx in [c for c in self.remote_reads if self.remote_reads[c] <= now]:
            del self.remote_reads[ctx]
            self.reads_out.append([ctx, "timeout"])

    # ---------------------------------------------------------------- role changes
    def become_follower(self, term, leader):
        if term > self.term:
            self.term = term
            self.vote = None
        old_leader = self.leader_id
        was_leader = self.role == LEADER
        self.role = FOLLOWER
        self.leader_id = leader
        self.progress = {}
        self.need_bcast = False
        self.heartbeat_deadline = _FOREVER
        self.commit_notify_at = _FOREVER
        self.reset_election_timer()
        if was_leader:
            self._fail_leader_reads("leadership_lost")
        if old_leader is not None and old_leader != leader:
            self._fail_pending("leadership_lost")

    def _fail_pending(self, error):
        for key in self.pending:
            self.results.append([key[0], key[1], error, self.leader_id])
        self.pending = {}
        for ctx in self.remote_reads:
            self.reads_out.append([ctx, error])
        self.remote_reads = {}

    def _fail_leader_reads(self, error):
        for r in self.leader_reads:
            if r[2] == self.id:
                self.reads_out.append([r[1], error])
        for r in self.reads_wait_noop:
            if r[1] == self.id:
                self.reads_out.append([r[0], error])
        self.leader_reads = []
        self.reads_wait_noop = []

    def start_pre_vote(self):
        """PreVote: ask whether we could win before disturbing anyone's term."""
        if self._campaign(PRECANDIDATE):
            self.start_election()  # a cluster of one wins at once
            return
        self._request_votes("pv", self.term + 1)

    def start_election(self):
        self.term += 1
        self.vote = self.id
        if self._campaign(CANDIDATE):
            self.become_leader()
            return
        self._request_votes("v", self.term)

    def _campaign(self, role):
        """Enter `role` with our own vote; True when that alone is a quorum."""
        old_leader = self.leader_id
        self.role = role
        self.leader_id = None
        if old_leader is not None:
            self._fail_pending("leadership_lost")
        self.votes = {self.id: True}
        self.reset_election_timer()
        return self.quorum == 1

    def _request_votes(self, kind, term):
        li = self.last_index()
        lt = self.term_at(li)
        for p in self.peers:
            self.msgs.append([kind, self.id, p, term, li, lt])

    def become_leader(self):
        self.role = LEADER
        self.leader_id = self.id
        self.last_leader_contact = self.now
        nxt = self.last_index() + 1
        self.progress = {}
        for p in self.peers:
            self.progress[p] = Progress(nxt, self.now)
        self.read_round = 0
        self.leader_reads = []
        self.reads_wait_noop = []
        # A no-op of our term lets earlier-term entries commit (Raft §5.4.2).
        self._append([self.term, NOOP, 0, None])
        self.need_bcast = True
        self.heartbeat_deadline = self.now + self.cfg.heartbeat_ms

    # ---------------------------------------------------------------- input
    def receive(self, text):
        """Decode one wire message and step it; malformed input is counted."""
        try:
            msg = decode(text)
        except DecodeError:
            self._count("dropped_malformed")
            return
        self._dispatch(msg)

    def step(self, msg):
        """Step one decoded message; anything invalid is dropped and counted."""
        if problem(msg) is not None:
            self._count("dropped_malformed")
            return
        self._dispatch(msg)

    def _dispatch(self, msg):
        t = msg[0]
        src = msg[1]
        if msg[2] != self.id:
            self._count("dropped_wrong_destination")
            return
        if src not in self.voters or src == self.id:
            self._count("dropped_unknown_sender")
            return
        mterm = msg[3]
        if mterm > self.term:
            if t == "pv" or t == "v":
                if self._in_lease():
                    # CheckQuorum lease: a live leader exists; ignore disruptors.
                    self._count("dropped_in_lease")
                    return
                if t == "v":
                    self.become_follower(mterm, None)
            elif t == "pvr":
                if not msg[4]:
                    self.become_follower(mterm, None)
            elif t == "a" or t == "h" or t == "s":
                self.become_follower(mterm, src)
            else:
                self.become_follower(mterm, None)
        elif mterm < self.term:
            self.handle_stale_term_message(msg)
            return
        if t == "a":
            self.handle_append_entries_request(msg)
        elif t == "ar":
            self.handle_append_entries_reply(msg)
        elif t == "h":
            self.handle_heartbeat(msg)
        elif t == "hr":
            self.handle_heartbeat_reply(msg)
        elif t == "v" or t == "pv":
            self.handle_request_vote_request(msg)
        elif t == "vr":
            self.handle_request_vote_reply(msg)
        elif t == "pvr":
            self.handle_pre_vote_reply(msg)
        elif t == "p":
            self.handle_forwarded_proposal(msg)
        elif t == "pr":
            self.handle_proposal_failure(msg)
        elif t == "r":
            self.handle_forwarded_read(msg)
        elif t == "s":
            self.handle_install_snapshot_request(msg)
        elif t == "sr":
            self.handle_install_snapshot_reply(msg)
        else:
            self.handle_read_reply(msg)

    def _in_lease(self):
        if not self.cfg.check_quorum:
            return False
        if self.role == LEADER:
            return self.has_quorum
        return (self.leader_id is not None and
                self.now - self.last_leader_contact < self.cfg.election_min_ms)

    def handle_stale_term_message(self, msg):
        """Older term: reject (never reset our timer); tell the sender our term."""
        t = msg[0]
        src = msg[1]
        self._count("dropped_stale_term")
        if t == "a" or t == "h" or t == "s":
            # Lets a deposed leader (e.g. back from a partition) step down.
            self.msgs.append(["ar", self.id, src, self.term, 0, 1, 0, 0])
        elif t == "pv":
            self.msgs.append(["pvr", self.id, src, self.term, 0])
        elif t == "v":
            self.msgs.append(["vr", self.id, src, self.term, 0])
        elif t == "p":
            self.msgs.append(["pr", self.id, src, self.term, msg[4], msg[5],
                              "leadership_lost", self.leader_id])
        elif t == "r":
            self.msgs.append(["rr", self.id, src, self.term, msg[4], 0,
                              "leadership_lost"])

    # ---------------------------------------------------------------- elections
    def handle_request_vote_request(self, msg):
        """Vote rule: one vote per term, only for an at-least-as-up-to-date log."""
        t, src, _, mterm, cand_last_index, cand_last_term = msg
        pre = t == "pv"
        can_vote = (self.vote == src or
                    (self.vote is None and self.leader_id is None) or
                    (pre and mterm > self.term))
        li = self.last_index()
        lt = self.term_at(li)
        up_to_date = cand_last_term > lt or (cand_last_term == lt and cand_last_index >= li)
        reply = "pvr" if pre else "vr"
        if can_vote and up_to_date:
            if not pre:
                self.vote = src           # persisted (Ready.hard_state) before the reply is sent
                self.reset_election_timer()
            self.msgs.append([reply, self.id, src, mterm, 1])
        else:
            self.msgs.append([reply, self.id, src, self.term, 0])

    def handle_pre_vote_reply(self, msg):
        if self.role != PRECANDIDATE or msg[3] != self.term + 1:
            self._count("dropped_stale_reply")
            return
        self.votes[msg[1]] = msg[4] == 1
        granted, rejected = self._tally()
        if granted >= self.quorum:
            self.start_election()
        elif rejected >= self.quorum:
            self.become_follower(self.term, None)

    def handle_request_vote_reply(self, msg):
        if self.role != CANDIDATE or msg[3] != self.term:
            self._count("dropped_stale_reply")
            return
        self.votes[msg[1]] = msg[4] == 1
        granted, rejected = self._tally()
        if granted >= self.quorum:
            self.become_leader()
        elif rejected >= self.quorum:
            self.become_follower(self.term, None)

    def _tally(self):
        granted = 0
        for v in self.votes.values():
            if v:
                granted += 1
        return granted, len(self.votes) - granted

    # ---------------------------------------------------------------- replication (follower)
    def _heard_from_leader(self, src):
        if self.role != FOLLOWER:
            self.become_follower(self.term, src)
        elif self.leader_id != src:
            old = self.leader_id
            self.leader_id = src
            if old is not None:
                self._fail_pending("leadership_lost")
        self.last_leader_contact = self.now
        self.reset_election_timer()

    def handle_append_entries_request(self, msg):
        src = msg[1]
        if self.role == LEADER:
            self._count("dropped_second_leader")  # impossible unless a bug: ignore
            return
        self._heard_from_leader(src)
        prev = msg[4]
        prev_term = msg[5]
        ents = msg[6]
        commit = self.commit_index
        if prev < commit:
            # Reordered old message: everything up to commit already matches.
            self.msgs.append(["ar", self.id, src, self.term, commit, 0, 0, 0])
            return
        last = self.last_index()
        if prev > last or self.term_at(prev) != prev_term:
            self._reject_append(src, prev, prev_term, last)
            return
        if not self.append_entries_after(prev, ents):
            return
        new_last = prev + len(ents)
        lcommit = msg[7]
        if lcommit > commit:
            # Only entries known to match the leader's may be committed.
            self.commit_index = lcommit if lcommit < new_last else new_last
            if self.commit_index < commit:
                self.commit_index = commit
        self.msgs.append(["ar", self.id, src, self.term, new_last, 0, 0, 0])

    def _reject_append(self, src, prev, prev_term, last):
        # Fast backoff: our last index whose term <= prev_term lets the leader
        # skip a whole term per round trip instead of one entry.
        hint = prev if prev < last else last
        off = self.offset
        log = self.log
        while hint > off and log[hint - off][0] > prev_term:
            hint -= 1
        self.msgs.append(["ar", self.id, src, self.term, prev, 1, hint,
                          log[hint - off][0]])

    def append_entries_after(self, prev, ents):
        """Truncate the first conflicting suffix (of any length), append the rest."""
        log = self.log
        off = self.offset
        n = len(ents)
        last = off + len(log) - 1
        i = 0
        while i < n:
            j = prev + 1 + i
            if j > last:
                break
            if log[j - off][0] != ents[i][0]:
                if j <= self.commit_index:
                    # Leader Completeness makes this impossible; never lose commits.
                    self._count("refused_truncate_committed")
                    return False
                del log[j - off:]
                if j < self.unstable_from:
                    self.unstable_from = j
                break
            i += 1
        if i < n:
            if i:
                ents = ents[i:]
            log.extend(ents)
        return True

    def handle_heartbeat(self, msg):
        if self.role == LEADER:
            self._count("dropped_second_leader")
            return
        src = msg[1]
        self._heard_from_leader(src)
        # The leader sends min(match, commit), so these entries are the leader's.
        c = msg[4]
        last = self.last_index()
        if c > last:
            c = last
        if c > self.commit_index:
            self.commit_index = c
        self.msgs.append(["hr", self.id, src, self.term, msg[5]])

    # ---------------------------------------------------------------- replication (leader)
    def _append(self, entry):
        self.log.append(entry)

    def broadcast_append(self):
        for p in self.peers:
            if self.send_append(p, True):
                # pipelining: fill the follower's inflight window
                while self.send_append(p, False):
                    pass
        self.need_bcast = False
        self.commit_notify_at = _FOREVER  # every follower got the commit index

    def send_append(self, to, send_empty):
        """One AppendEntries batch for `to`, capped by count and bytes."""
        pr = self.progress[to]
        if pr.state == PROBE:
            if pr.probe_sent:
                return False
        elif pr.state == SNAPSHOT:
            return False         # chunks are paced by the follower's acks
        elif len(pr.inflight) >= self.cfg.max_inflight:
            return False
        last = self.last_index()
        nxt = pr.next
        if nxt > last + 1:
            nxt = last + 1
        off = self.offset
        prev = nxt - 1
        if prev < off:
            # The entries it needs are compacted away: InstallSnapshot.
            pr.become_snapshot(off)
            self.send_snapshot_chunk(to)
            return False
        if nxt <= last:
            end = nxt + self.cfg.max_entries_per_msg
            if end > last + 1:
                end = last + 1
            ents = self.log[nxt - off:end - off]
            ents = self._fit_bytes(ents)
            end = nxt + len(ents)
        elif not send_empty:
            return False
        else:
            ents = []
            end = nxt
        c = self.commit_index
        self.msgs.append(["a", self.id, to, self.term, prev, self.log[prev - off][0], ents, c])
        if pr.state == PROBE:
            pr.probe_sent = True
        elif ents:
            pr.next = end
            pr.inflight.append(end - 1)
        return True

    def _fit_bytes(self, ents):
        """Cut a batch so its encoding fits max_bytes_per_msg (one C-level
        dumps per try instead of a size per entry)."""
        budget = self.cfg.max_bytes_per_msg - _MSG_OVERHEAD
        n = len(ents)
        size = _utf8_len(json.dumps(ents, separators=_SEP))
        while size > budget and n > 1:
            n = n * budget // size if n * budget // size < n else n - 1
            if n < 1:
                n = 1
            ents = ents[:n]
            size = _utf8_len(json.dumps(ents, separators=_SEP))
        return ents

    def handle_append_entries_reply(self, msg):
        if self.role != LEADER:
            self._count("dropped_stale_reply")
            return
        src = msg[1]
        pr = self.progress[src]
        pr.last_heard = self.now
        index = msg[4]
        if index > self.last_index():
            self._count("dropped_out_of_range")   # acks what we never sent
            return
        if pr.state == SNAPSHOT:
            # Only an ack covering the snapshot ends the transfer.
            if not msg[5] and index > pr.match:
                pr.match = index
                if index >= pr.snap_index:
                    pr.become_probe(index + 1)
                    self.send_append(src, True)
            return
        if msg[5]:
            self._handle_append_rejection(pr, src, index, msg[6], msg[7])
            return
        if index > pr.match:
            pr.match = index
            if pr.state == PROBE:
                pr.become_replicate()
            else:
                pr.free_inflight_upto(index)
            if pr.next <= index:
                pr.next = index + 1
            if index > self.offset and self.term_at(index) == self.term:
                self.advance_commit_index()
        elif pr.state == PROBE:
            pr.probe_sent = False
        # A reply at once triggers the next batch (pipelining, no idle round trip).
        while self.send_append(src, False):
            pass

    def _handle_append_rejection(self, pr, src, rejected, hint_index, hint_term):
        if pr.state == REPLICATE:
            if rejected <= pr.match:
                self._count("dropped_stale_reply")
                return
        elif rejected != pr.next - 1:
            self._count("dropped_stale_reply")
            return
        last = self.last_index()
        k = hint_index if hint_index < last else last
        off = self.offset
        log = self.log
        while k > off and log[k - off][0] > hint_term:
            k -= 1
        pr.become_probe(k + 1)
        self.send_append(src, True)

    def advance_commit_index(self):
        """Commit rule: majority match, and only an entry of the current term."""
        stable = self.unstable_from - 1
        matches = [stable]
        for pr in self.progress.values():
            matches.append(pr.match)
        matches.sort()
        n = matches[len(matches) - self.quorum]
        if n > self.commit_index and self.term_at(n) == self.term:
            first_of_term = self.term_at(self.commit_index) != self.term
            self.commit_index = n
            # Tell followers soon, not at once: the next AppendEntries
            # (usually within a round trip under load) carries it anyway.
            if self.commit_notify_at == _FOREVER:
                self.commit_notify_at = self.now + COMMIT_NOTIFY_MS
            if first_of_term and self.reads_wait_noop:
                waiting = self.reads_wait_noop
                self.reads_wait_noop = []
                for ctx, origin in waiting:
                    self._start_leader_read(ctx, origin)

    def broadcast_heartbeat(self):
        self.heartbeat_deadline = self.now + self.cfg.heartbeat_ms
        self.need_read_heartbeat = False
        c = self.commit_index
        rnd = self.read_round
        for p in self.peers:
            pr = self.progress[p]
            m = pr.match if pr.match < c else c
            self.msgs.append(["h", self.id, p, self.term, m, rnd])

    def handle_heartbeat_reply(self, msg):
        if self.role != LEADER:
            self._count("dropped_stale_reply")
            return
        src = msg[1]
        pr = self.progress[src]
        pr.last_heard = self.now
        if msg[4] > pr.read_ack:
            pr.read_ack = msg[4]
            self._confirm_leader_reads()
        if pr.state == SNAPSHOT:
            # A chunk or its ack may be lost: send the wanted chunk again.
            self.send_snapshot_chunk(src)
            return
        if pr.state == PROBE:
            pr.probe_sent = False
        elif len(pr.inflight) >= self.cfg.max_inflight:
            pr.inflight.pop(0)    # a batch may be lost: let one more go
        if pr.match < self.last_index():
            # An empty append is rejected if batches were lost: back to probe.
            self.send_append(src, True)

    def _recent_active_count(self):
        n = 1
        horizon = self.now - self.cfg.election_min_ms
        for pr in self.progress.values():
            if pr.last_heard > horizon:
                n += 1
        return n

    def check_quorum(self):
        """CheckQuorum: a leader cut off from a majority steps down."""
        if self._recent_active_count() < self.quorum:
            self._count("check_quorum_step_down")
            self.become_follower(self.term, None)
        else:
            self.last_leader_contact = self.now

    # ---------------------------------------------------------------- client proposals
    def propose(self, client_id, seq, command):
        err = client_problem(client_id, seq)
        size = json_size(command, 0)
        if err is None and size < 0:
            err = "command is not JSON"
        if err is not None:
            self.results.append([client_id, seq, "invalid", err])
            return
        key = (client_id, seq)
        if self.role == LEADER:
            err = self.leader_append_proposal(client_id, seq, command, size)
            if err is not None:
                self.results.append([client_id, seq, err, self.leader_id])
                return
        elif self.leader_id is None:
            self.results.append([client_id, seq, "no_leader", None])
            return
        else:
            self.msgs.append(["p", self.id, self.leader_id, self.term, client_id, seq, command])
        self.pending[key] = self.now + self.cfg.request_timeout_ms

    def leader_append_proposal(self, client_id, seq, command, size):
        entry = [self.term, client_id, seq, command]
        budget = self.cfg.max_bytes_per_msg - _MSG_OVERHEAD
        if size * 4 > budget:   # cheap estimate first; exact encoding when big
            if _utf8_len(json.dumps(entry, separators=_SEP)) > budget:
                return "too_large"     # would not fit one message, ever
        if self.last_index() - self.commit_index >= self.cfg.max_uncommitted:
            return "too_many_pending"
        self.log.append(entry)
        self.need_bcast = True     # sent as one batch at the next ready()
        return None

    def handle_forwarded_proposal(self, msg):
        src = msg[1]
        if self.role != LEADER:
            err = "no_leader"
        else:
            err = self.leader_append_proposal(msg[4], msg[5], msg[6], json_size(msg[6], 0))
        if err is not None:
            self.msgs.append(["pr", self.id, src, self.term, msg[4], msg[5], err,
                              self.leader_id])

    def handle_proposal_failure(self, msg):
        key = (msg[4], msg[5])
        if key in self.pending:
            del self.pending[key]
            self.results.append([msg[4], msg[5], msg[6], msg[7]])

    # ---------------------------------------------------------------- ReadIndex
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
        if self.quorum == 1:
            self._confirm_leader_reads()

    def _confirm_leader_reads(self):
        acks = [self.read_round]
        for pr in self.progress.values():
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

    # ---------------------------------------------------------------- Ready / advance
    def has_ready(self):
        return bool(self.msgs or self.results or self.reads_out or
                    self.snap_out is not None or
                    (self.need_bcast and self.role == LEADER) or
                    (self.need_read_heartbeat and self.role == LEADER) or
                    self.unstable_from <= self.last_index() or
                    self.commit_index > self.applied_index or
                    self._saved_hs != (self.term, self.vote, self.commit_index))

    def ready(self):
        if self.role == LEADER:
            if self.need_bcast:
                self.broadcast_append()
            if self.need_read_heartbeat:
                self.broadcast_heartbeat()
        rd = Ready()
        if self.snap_out is not None:
            rd.snapshot = self.snap_out
            rd.snapshot_installed = self.snap_installed
            rd.log_discarded = self.snap_discard_log
        hs = (self.term, self.vote, self.commit_index)
        if hs != self._saved_hs:
            rd.hard_state = [hs[0], hs[1], hs[2]]
        off = self.offset
        if self.unstable_from <= self.last_index():
            rd.entries_from = self.unstable_from
            rd.entries = self.log[self.unstable_from - off:]
        rd.messages = self.msgs
        self.msgs = []
        if self.commit_index > self.applied_index:
            rd.committed_from = self.applied_index + 1
            rd.committed = self.log[self.applied_index + 1 - off:self.commit_index + 1 - off]
        rd.results = self.results
        self.results = []
        rd.reads = self.reads_out
        self.reads_out = []
        return rd

    def advance(self, rd):
        """The driver has persisted and sent rd: apply its committed entries."""
        if rd.snapshot is not None and rd.snapshot is self.snap_out:
            self.snap_out = None
            self.snap_installed = False
            self.snap_discard_log = False
        if self.applied_index > self.offset and self.log_too_long():
            # Checked on every advance (a leader waits for its followers'
            # acks), and before applying: the driver's per-batch hooks
            # (on_applied) of the previous batch have run, so app state that
            # they complete is whole in the snapshot.
            self.compact_log()
        if rd.hard_state is not None:
            hs = rd.hard_state
            self._saved_hs = (hs[0], hs[1], hs[2])
        if rd.entries:
            self.unstable_from = rd.entries_from + len(rd.entries)
        if rd.committed:
            self.apply_committed(rd.committed_from, rd.committed)
        if self.role == LEADER and rd.entries:
            self.advance_commit_index()   # our own log write counts toward a majority

    def apply_committed(self, first, entries):
        if first != self.applied_index + 1:
            raise ValueError("committed entries applied out of order")
        apply = self.sessions.apply
        sm = self.state_machine
        pending = self.pending
        for e in entries:
            client = e[1]
            if client is None:
                continue                  # a leader's no-op
            err, result = apply(client, e[2], e[3], sm)
            if pending:
                key = (client, e[2])
                if key in pending:
                    del pending[key]
                    self.results.append([client, e[2], err, result])
        self.applied_index = first + len(entries) - 1
        self._release_local_reads()

    # ---------------------------------------------------------------- snapshots (log compaction)
    def snapshot_state(self):
        return {"sm": self.state_machine.snapshot(), "sessions": self.sessions.snapshot(),
                "index": self.applied_index}

    def restore_state(self, data):
        self.state_machine.restore(data["sm"])
        self.sessions.restore(data["sessions"])

    def log_too_long(self):
        """Compaction trigger: applied entries in the log over the entry or byte threshold."""
        cfg = self.cfg
        n = self.applied_index - self.offset
        if n <= 0:
            return False
        over = 0
        if cfg.snapshot_entries:
            over = n * 2 // cfg.snapshot_entries        # 1: over, 2: twice over
        if cfg.snapshot_bytes:
            if self.applied_index - self.measured_upto >= _MEASURE_EVERY:
                # One C-level dumps per chunk of entries, not one per entry.
                off = self.offset
                seg = self.log[self.measured_upto + 1 - off:self.applied_index + 1 - off]
                self.log_bytes += _utf8_len(json.dumps(seg, separators=_SEP))
                self.measured_upto = self.applied_index
            b = self.log_bytes * 2 // cfg.snapshot_bytes
            if b > over:
                over = b
        if over < 2:
            return False
        if self.role == LEADER and over < 4:
            # Spare followers a snapshot transfer: wait (up to twice the
            # threshold) until every follower we hear from has these entries.
            horizon = self.now - self.cfg.election_min_ms
            for pr in self.progress.values():
                if pr.last_heard > horizon and pr.match < self.applied_index:
                    return False
        return True

    def compact_log(self):
        """Snapshot the state machine at applied_index and drop the log up to it."""
        index = self.applied_index
        term = self.term_at(index)
        data = self.snapshot_state()
        del self.log[:index - self.offset]
        self.log[0] = [term, NOOP, 0, None]
        self.offset = index
        self._set_snapshot([index, term, data], False, False)
        self._count("snapshots_taken")

    def _set_snapshot(self, snap, installed, discard_log):
        self.snapshot = snap
        self.snap_blob = None
        if self.snap_out is not None:
            installed = installed or self.snap_installed
            discard_log = discard_log or self.snap_discard_log
        self.snap_out = snap
        self.snap_installed = installed
        self.snap_discard_log = discard_log
        self.log_bytes = 0
        self.measured_upto = snap[0]
        if self.unstable_from <= snap[0]:
            self.unstable_from = snap[0] + 1

    def _snapshot_chunk(self, blob, start):
        """The text chunk at `start` whose encoding (a JSON string: quotes and
        backslashes escaped, UTF-8) fits one message. Plain JSON text, no
        base64: MicroPython's binascii is slow pure Python."""
        budget = self.cfg.max_bytes_per_msg - _MSG_OVERHEAD
        n = budget // 2
        while True:
            part = blob[start:start + n]
            size = _utf8_len(json.dumps(part))
            if size <= budget or n <= 1:
                return part
            n = n * budget // size - 16 if n * budget // size - 16 < n else n // 2
            if n < 1:
                n = 1

    def send_snapshot_chunk(self, to):
        """InstallSnapshot: send the chunk at the offset the follower asked for."""
        pr = self.progress[to]
        snap = self.snapshot
        if pr.snap_index != snap[0]:
            pr.become_snapshot(snap[0])      # a newer snapshot replaces the one in transfer
        if self.snap_blob is None:
            self.snap_blob = json.dumps(snap[2], separators=_SEP)
        blob = self.snap_blob
        start = pr.snap_offset
        text = self._snapshot_chunk(blob, start)
        done = 1 if start + len(text) >= len(blob) else 0
        self.msgs.append(["s", self.id, to, self.term, snap[0], snap[1], start, text, done])
        self._count("snapshot_chunks_sent")

    def handle_install_snapshot_reply(self, msg):
        if self.role != LEADER:
            self._count("dropped_stale_reply")
            return
        src = msg[1]
        pr = self.progress[src]
        pr.last_heard = self.now
        s_index = msg[4]
        want = msg[5]
        if pr.state != SNAPSHOT or s_index != pr.snap_index:
            self._count("dropped_stale_reply")
            return
        if msg[6]:
            # Installed (or already covered): resume normal replication after it.
            if s_index > pr.match:
                pr.match = s_index
            pr.become_probe(pr.match + 1)
            self.send_append(src, True)
            return
        blob_len = len(self.snap_blob) if self.snap_blob is not None else 0
        if want > blob_len:
            self._count("dropped_out_of_range")
            return
        # Move on only for progress or a restart from 0: duplicated acks must
        # not multiply chunks in flight (lost chunks are resent on heartbeat replies).
        if want > pr.snap_offset or (want == 0 and pr.snap_offset != 0):
            pr.snap_offset = want
            self.send_snapshot_chunk(src)

    def handle_install_snapshot_request(self, msg):
        """Follower: collect chunks in order (ack = next offset wanted), then install."""
        if self.role == LEADER:
            self._count("dropped_second_leader")
            return
        src = msg[1]
        self._heard_from_leader(src)
        s_index = msg[4]
        s_term = msg[5]
        start = msg[6]
        if s_index <= self.commit_index:
            # We already have all it covers: let the leader go on after it.
            self.snap_in = None
            self.msgs.append(["sr", self.id, src, self.term, s_index, start, 1])
            return
        cur = self.snap_in
        if cur is None or cur[0] != s_index or cur[1] != s_term:
            if start != 0:
                self.msgs.append(["sr", self.id, src, self.term, s_index, 0, 0])
                return
            cur = [s_index, s_term, [], 0]
            self.snap_in = cur
        if start != cur[3]:
            self.msgs.append(["sr", self.id, src, self.term, s_index, cur[3], 0])
            return
        part = msg[7]
        cur[2].append(part)
        cur[3] += len(part)
        if cur[3] > _MAX_SNAPSHOT:
            self._count("dropped_snapshot_too_large")
            self.snap_in = None
            return
        if not msg[8]:
            self.msgs.append(["sr", self.id, src, self.term, s_index, cur[3], 0])
            return
        self.snap_in = None
        try:
            data = json.loads("".join(cur[2]))
        except Exception:
            data = None
        if (type(data) is not dict or data.get("index") != s_index or
                "sm" not in data or type(data.get("sessions")) is not list):
            self._count("dropped_bad_snapshot")
            self.msgs.append(["sr", self.id, src, self.term, s_index, 0, 0])
            return
        self.install_snapshot(s_index, s_term, data)
        self.msgs.append(["sr", self.id, src, self.term, s_index, cur[3], 1])

    def install_snapshot(self, index, term, data):
        """Raft §7: keep the log after the snapshot if it has the snapshot's
        last entry with the same term; otherwise discard the whole log."""
        off = self.offset
        last = self.last_index()
        keep = off < index <= last and self.term_at(index) == term
        if keep:
            del self.log[:index - off]
            self.log[0] = [term, NOOP, 0, None]
        else:
            self.log = [[term, NOOP, 0, None]]
            self.unstable_from = index + 1
        self.offset = index
        self.restore_state(data)
        self.applied_index = index
        if self.commit_index < index:
            self.commit_index = index
        self._set_snapshot([index, term, data], True, not keep)
        self._count("snapshots_installed")
        self._release_local_reads()
