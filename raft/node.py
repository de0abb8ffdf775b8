"""The sans-IO Raft node (RawNode style). See raft/API.md for the contract.

Handlers are named after the rules of the Raft paper (and raftscope):
start_pre_vote, start_election, become_leader, advance_commit_index,
handle_request_vote_request, handle_append_entries_request, ...
This module holds construction, timers, role changes, message dispatch,
elections and the replication hot path (AppendEntries, commit, Ready); the
colder parts are mixins of Node in raft/proposals.py, raft/reads.py,
raft/membership_node.py and raft/compaction.py.
"""
from .codec import (problem, decode, DecodeError, entries_problem, compact,
                    MSG_OVERHEAD as _MSG_OVERHEAD, utf8_len as _utf8_len,
                    vote_request, vote_reply, append_request, append_reply, heartbeat,
                    heartbeat_reply, proposal_failure, read_reply, membership_reply)
from .compaction import LogCompaction
from .config import Config
from .kv import KVStateMachine
from .membership import config_problem
from .membership_node import NodeMembership
from .progress import Progress, PROBE, REPLICATE, SNAPSHOT
from .proposals import ClientProposals
from .reads import ReadIndex
from .rng import Rng, seed_from_text
from .roles import FOLLOWER, PRECANDIDATE, CANDIDATE, LEADER, NOOP, FOREVER as _FOREVER
from .sessions import Sessions, apply_entries

# A new commit index reaches idle followers within this long (ms).
COMMIT_NOTIFY_MS = 10


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
        # Leader: a majority of the other voters stored every committed entry,
        # so storage may drop the log first to make room for the snapshot.
        self.log_replicated = False


class Node(ClientProposals, ReadIndex, NodeMembership, LogCompaction):
    """One Raft node. The hot path (elections, AppendEntries, commit, Ready)
    is here; cold parts are mixins: raft/proposals.py, raft/reads.py,
    raft/membership_node.py, raft/compaction.py."""

    def __init__(self, node_id, voters, config=None, rng=None,
                 state_machine=None, storage=None, now_ms=0):
        if type(node_id) is not str or not 0 < len(node_id) <= 64:
            raise ValueError("node id must be a non-empty str of <= 64 chars")
        for v in voters:
            if type(v) is not str or not 0 < len(v) <= 64:
                raise ValueError("voter ids must be non-empty str of <= 64 chars")
        voters = sorted(set(voters))
        self.id = node_id
        # Membership (raft/membership_node.py): the bootstrap configuration (the
        # node itself need not be in it: an "outsider"), then the snapshot's
        # (base_conf), then every configuration entry in the log (conf_log:
        # [index, voters, learners, by], ascending). The latest one rules,
        # committed or not; _adopt_latest_config sets voters, learners,
        # peers, quorum, membership, config_index from it.
        self.boot_conf = [0, voters, [], None]
        self.base_conf = self.boot_conf
        self.conf_log = []
        self.cfg = config or Config()
        self.rng = rng or Rng(seed_from_text(node_id)).random
        self.state_machine = state_machine if state_machine is not None else KVStateMachine()
        self.sessions = Sessions(self.cfg.session_window, self.cfg.max_sessions)
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
        self.snap_in = None        # follower: the IncomingSnapshot being received
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
        # ReadIndex (raft/reads.py documents these)
        self.my_reads = {}
        self.remote_reads = {}
        self.local_reads = []
        self.leader_reads = []
        self.reads_wait_noop = []
        self.read_round = 0
        self.read_seq = 0
        self.read_nonce = None
        self.need_bcast = False
        self.need_read_heartbeat = False
        self.heartbeat_deadline = _FOREVER
        self.commit_notify_at = _FOREVER  # leader: when to broadcast a new commit index
        self.next_expiry_check = now_ms + self.cfg.heartbeat_ms
        self.targets = []          # leader: ids it replicates to (members + leaving ones)
        self.voter_prs = []        # leader: Progress of the other voters (majorities)
        self.leader_cleanup = False
        self.leave_at = _FOREVER   # leader: when to stop replicating to removed members
        self._adopt_latest_config()
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
        if vote is not None and (type(vote) is not str or not 0 < len(vote) <= 64):
            raise ValueError("persisted vote is not a node id")
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
            if "config" in snap[2] and config_problem(snap[2]["config"], False) is not None:
                raise ValueError("bad configuration in persisted snapshot")
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
            self.base_conf = self._snapshot_conf(snap[2])
        # The configuration is not persisted apart: recompute it from the log.
        self._note_config_entries(s_index + 1, self.log, 1)

    # ---------------------------------------------------------------- log helpers
    def last_index(self):
        return self.offset + len(self.log) - 1

    def first_index(self):
        """Index of the first entry still in the log (those before it are
        covered by the snapshot)."""
        return self.offset + 1

    def term_at(self, index):
        return self.log[index - self.offset][0]

    def entries(self, first, last):
        """Log entries first..last (both included) as a list, or None when
        `first` is covered by the snapshot (or last is past the log). The
        entries are shared with the log: read-only."""
        off = self.offset
        if first <= off or last > off + len(self.log) - 1:
            return None
        return self.log[first - off:last + 1 - off]

    def replicated_on(self, index):
        """(count, exact): how many voters hold log entry `index`. The leader
        knows each follower's match index (exact); elsewhere a committed
        entry is known to be on a majority, the lower bound given."""
        mine = 1 if self.self_voter and self.last_index() >= index else 0
        if self.role == LEADER:
            n = mine
            for pr in self.voter_prs:
                if pr.match >= index:
                    n += 1
            return n, True
        if self.commit_index >= index:
            return self.quorum, False
        return mine, False

    def has_session(self, client_id):
        """Whether the session table, as applied here, knows the client
        (raft/API.md, session expiry)."""
        return self.sessions.knows(client_id)

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
        if (self.pending or self.my_reads) and self.next_expiry_check < d:
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
            if not self.self_voter:
                self.reset_election_timer()   # learners and outsiders never campaign
            elif self.cfg.pre_vote:
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
        self._expire_reads()

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
        self.targets = []
        self.voter_prs = []
        self.leader_cleanup = False
        self.leave_at = _FOREVER
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
        self._fail_forwarded_reads(error)

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
        for p in self.electors:
            self.msgs.append(vote_request(kind, self.id, p, term, li, lt))

    def become_leader(self):
        self.role = LEADER
        self.leader_id = self.id
        self.last_leader_contact = self.now
        nxt = self.last_index() + 1
        self.progress = {}
        for p in self.peers:
            self.progress[p] = Progress(nxt, self.now)
        self._update_leader_progress()
        self.read_round = 0
        self.leader_reads = []
        self.reads_wait_noop = []
        # A no-op of our term lets earlier-term entries commit (Raft §5.4.2).
        self._append([self.term, NOOP, 0, None])
        self.need_bcast = True
        self.heartbeat_deadline = self.now + self.cfg.heartbeat_ms

    # ---------------------------------------------------------------- input
    def receive(self, text, sender=None):
        """The way in for wire text: decode and validate it once, then step
        it. sender: the authenticated far end of the channel it came on; a
        message whose src is another id is dropped (stats dropped_spoofed).
        Malformed text is dropped and counted (dropped_malformed). Returns
        the message's type tag once it was stepped, None when it was dropped
        here (for the driver's counters and instrumentation)."""
        try:
            msg = decode(text)
        except DecodeError:
            self._count("dropped_malformed")
            return None
        if sender is not None and msg[1] != sender:
            self._count("dropped_spoofed")
            return None
        self._dispatch(msg)
        return msg[0]

    def step(self, msg):
        """Step one message list, as codec.decode returns it or as built in
        this process. Its shape and fields are checked (anything invalid is
        dropped and counted); commands are taken to be JSON values, as
        decoded text always is (not walked again)."""
        if problem(msg, True) is not None:
            self._count("dropped_malformed")
            return
        self._dispatch(msg)

    def _dispatch(self, msg):
        t, src, dst, mterm = msg[0], msg[1], msg[2], msg[3]
        if dst != self.id:
            self._count("dropped_wrong_destination")
            return
        if src == self.id:
            self._count("dropped_unknown_sender")
            return
        if src not in self.known_ids and (
                not (t == "a" or t == "h" or t == "s") or
                (self.leader_id in self.known_ids and self._in_lease())):
            # Defence in depth: Raft traffic from an id outside every
            # configuration we know (bootstrap, snapshot, log) is dropped:
            # it cannot campaign, acknowledge, forward or answer. Leader
            # traffic is the exception (a node that missed the change adding
            # its new leader, or a window not added yet, must follow it), but
            # not while a leader we know holds its lease.
            self._count("dropped_outsider")
            return
        if mterm > self.term:
            if t == "pv" or t == "v":
                if self._in_lease():
                    # CheckQuorum lease: a live leader exists; ignore disruptors.
                    self._count("dropped_in_lease")
                    if self.role == LEADER and src not in self.progress:
                        self._catch_up_stray(src)
                    return
                if t == "v":
                    self.become_follower(mterm, None)
            elif t == "pvr":
                if not msg[4]:                # granted 0: a rejection at a higher term
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
        elif t == "m":
            self.handle_membership_request(msg)
        elif t == "mr":
            self.handle_membership_reply(msg)
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
        t, src = msg[0], msg[1]
        me, term = self.id, self.term
        self._count("dropped_stale_term")
        if t == "a" or t == "h" or t == "s":
            # Lets a deposed leader (e.g. back from a partition) step down.
            self.msgs.append(append_reply(me, src, term, 0, 1, 0, 0))
        elif t == "pv" or t == "v":
            self.msgs.append(vote_reply("pvr" if t == "pv" else "vr", me, src, term, 0))
            if self.role == LEADER and src not in self.progress:
                self._catch_up_stray(src)
        elif t == "p":
            _, _, _, _, client_id, seq, _ = msg
            self.msgs.append(proposal_failure(me, src, term, client_id, seq, "leadership_lost",
                                              self.leader_id))
        elif t == "r":
            self.msgs.append(read_reply(me, src, term, msg[4], 0, "leadership_lost"))
        elif t == "m":
            _, _, _, _, client_id, seq, _, _ = msg
            self.msgs.append(membership_reply(me, src, term, client_id, seq, "leadership_lost",
                                              self.leader_id))

    # ---------------------------------------------------------------- elections
    def handle_request_vote_request(self, msg):
        """Vote rule: one vote per term, only for an at-least-as-up-to-date log."""
        t, src, _, mterm, cand_last_index, cand_last_term = msg
        if self.role == LEADER and src not in self.progress:
            self._catch_up_stray(src)
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
            self.msgs.append(vote_reply(reply, self.id, src, mterm, 1))
        else:
            self.msgs.append(vote_reply(reply, self.id, src, self.term, 0))

    def handle_pre_vote_reply(self, msg):
        _, src, _, mterm, granted = msg
        # Grants come at the term we asked for; a voter rejects at its own
        # term, which may be ours (a higher one made us a follower already).
        if self.role != PRECANDIDATE or not (mterm == self.term + 1 or
                                             (mterm == self.term and not granted)):
            self._count("dropped_stale_reply")
            return
        if src not in self.electors:
            self._count("dropped_unknown_sender")   # only voters' votes count
            return
        self.votes[src] = granted == 1
        yes, no = self._tally()
        if yes >= self.quorum:
            self.start_election()
        elif no >= self.quorum:
            self.become_follower(self.term, None)

    def handle_request_vote_reply(self, msg):
        _, src, _, mterm, granted = msg
        if self.role != CANDIDATE or mterm != self.term:
            self._count("dropped_stale_reply")
            return
        if src not in self.electors:
            self._count("dropped_unknown_sender")
            return
        self.votes[src] = granted == 1
        yes, no = self._tally()
        if yes >= self.quorum:
            self.become_leader()
        elif no >= self.quorum:
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
        _, src, _, _, prev, prev_term, ents, lcommit = msg
        if self.role == LEADER:
            self._count("dropped_second_leader")  # impossible unless a bug: ignore
            return
        self._heard_from_leader(src)
        commit = self.commit_index
        if prev < commit:
            # Reordered old message: everything up to commit already matches.
            self.msgs.append(append_reply(self.id, src, self.term, commit, 0, 0, 0))
            return
        last = self.last_index()
        if prev > last or self.term_at(prev) != prev_term:
            self._reject_append(src, prev, prev_term, last)
            return
        if not self.append_entries_after(prev, ents):
            return
        new_last = prev + len(ents)
        if lcommit > commit:
            # Only entries known to match the leader's may be committed.
            self.commit_index = lcommit if lcommit < new_last else new_last
            if self.commit_index < commit:
                self.commit_index = commit
        self.msgs.append(append_reply(self.id, src, self.term, new_last, 0, 0, 0))

    def _reject_append(self, src, prev, prev_term, last):
        # Fast backoff: our last index whose term <= prev_term lets the leader
        # skip a whole term per round trip instead of one entry.
        hint = prev if prev < last else last
        off = self.offset
        log = self.log
        while hint > off and log[hint - off][0] > prev_term:
            hint -= 1
        self.msgs.append(append_reply(self.id, src, self.term, prev, 1, hint, log[hint - off][0]))

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
                if self.conf_log and self.conf_log[-1][0] >= j:
                    # The change was truncated: back to the previous configuration.
                    self.conf_log = [c for c in self.conf_log if c[0] < j]
                    self._adopt_latest_config()
                break
            i += 1
        if i < n:
            log.extend(ents[i:] if i else ents)
            if self._note_config_entries(prev + 1, ents, i):
                self._adopt_latest_config()
        return True

    def handle_heartbeat(self, msg):
        _, src, _, _, commit, read_round = msg
        if self.role == LEADER:
            self._count("dropped_second_leader")
            return
        self._heard_from_leader(src)
        # The leader sends min(match, commit), so these entries are the leader's.
        last = self.last_index()
        if commit > last:
            commit = last
        if commit > self.commit_index:
            self.commit_index = commit
        self.msgs.append(heartbeat_reply(self.id, src, self.term, read_round))

    # ---------------------------------------------------------------- replication (leader)
    def _append(self, entry):
        self.log.append(entry)

    def broadcast_append(self):
        for p in self.targets:
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
        self.msgs.append(append_request(self.id, to, self.term, prev, self.log[prev - off][0],
                                        ents, self.commit_index))
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
        size = _utf8_len(compact(ents))
        while size > budget and n > 1:
            n = n * budget // size if n * budget // size < n else n - 1
            if n < 1:
                n = 1
            ents = ents[:n]
            size = _utf8_len(compact(ents))
        return ents

    def handle_append_entries_reply(self, msg):
        _, src, _, _, index, reject, hint_index, hint_term = msg
        pr = self._reply_progress(src)
        if pr is None:
            return
        if index > self.last_index():
            self._count("dropped_out_of_range")   # acks what we never sent
            return
        if pr.state == SNAPSHOT:
            # Only an ack covering the snapshot ends the transfer.
            if not reject and index > pr.match:
                pr.match = index
                if index >= pr.snap_index:
                    pr.become_probe(index + 1)
                    self.send_append(src, True)
            return
        if reject:
            self._handle_append_rejection(pr, src, index, hint_index, hint_term)
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
        if k == off and off and log[0][0] > hint_term:
            # Even our snapshot's last entry disagrees with the follower's
            # log there: it needs the snapshot (probing `off` again would
            # be rejected again, forever).
            k = off - 1
        pr.become_probe(k + 1)
        self.send_append(src, True)

    def advance_commit_index(self):
        """Commit rule: majority match, and only an entry of the current term."""
        # Only voters count; a leader being removed does not count itself.
        matches = [self.unstable_from - 1] if self.self_voter else []
        for pr in self.voter_prs:
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
                for rid, origin, deadline in waiting:
                    self._start_leader_read(rid, origin, deadline)

    def broadcast_heartbeat(self):
        if self.now >= self.leave_at:
            self._let_go_of_removed()
        self.heartbeat_deadline = self.now + self.cfg.heartbeat_ms
        self.need_read_heartbeat = False
        c = self.commit_index
        rnd = self.read_round
        for p in self.targets:
            pr = self.progress[p]
            m = pr.match if pr.match < c else c
            self.msgs.append(heartbeat(self.id, p, self.term, m, rnd))

    def _reply_progress(self, src):
        """Leader: the Progress of a reply's sender, marked as heard from now;
        None (counted) if we no longer lead or do not track the sender."""
        if self.role != LEADER:
            self._count("dropped_stale_reply")
            return None
        pr = self.progress.get(src)
        if pr is None:
            self._count("dropped_unknown_sender")
            return None
        pr.last_heard = pr.last_reply = self.now
        return pr

    def handle_heartbeat_reply(self, msg):
        _, src, _, _, read_round = msg
        pr = self._reply_progress(src)
        if pr is None:
            return
        if read_round > pr.read_ack:
            pr.read_ack = read_round
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
        """Voters heard from within election_min_ms (us too, if a voter)."""
        n = 1 if self.self_voter else 0
        horizon = self.now - self.cfg.election_min_ms
        for pr in self.voter_prs:
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
            rd.log_replicated = self.stored_log_replicated()
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
            term, vote, commit = rd.hard_state
            self._saved_hs = (term, vote, commit)
        if rd.entries:
            self.unstable_from = rd.entries_from + len(rd.entries)
        if rd.committed:
            self.apply_committed(rd.committed_from, rd.committed)
        if self.role == LEADER:
            if rd.entries:
                self.advance_commit_index()   # our own log write counts toward a majority
            if self.leader_cleanup and self.applied_index >= self.config_index:
                self._leader_config_committed()

    def apply_committed(self, first, entries):
        if first != self.applied_index + 1:
            raise ValueError("committed entries applied out of order")
        apply_entries(self.sessions, first, entries, self.state_machine, self.pending,
                      self.results)
        self.applied_index = first + len(entries) - 1
        self._release_local_reads()
