"""Client windows: the wire protocol between a client and the member it is
attached to, and the client-side session (sans-IO, pure; raft/CLIENT.md).

A client is a page that is not a cluster member. It talks to one member over
the same data-channel transport, but never speaks Raft: its messages have
their own tag ("wc") so neither side can take one protocol for the other.

Wire form: ["wc", VERSION, type, ...fields] as compact JSON.
  client -> member:
    sub  [from_index]            send committed entries from this index
    p    [seq, command]          propose (the client id is the channel's sender)
    r    [ctx]                   linearizable read (ReadIndex on the member)
    sid  [n]                     my writes from now on are session n (after the
                                 cluster answered session_expired; the member
                                 proposes them as client id "<sender>.<n>")
  member -> client:
    st   [leader, quorum, voters]      member's view (leader id or null, 1 if it
                                       has a quorum, number of voters); sent on
                                       subscribe and on change
    e    [first, entries]              committed entries at first, first + 1, ...
                                       as in the log: [term, client, seq, command]
                                       (no-ops and configuration entries have
                                       client null and are not applied)
    s    [index, offset, done, piece]  snapshot at `index` (JSON text of
                                       {"sm", "sessions", "window"}), chunked
    sid  [n]                           from here on, outcomes are session n's
    pr   [seq, error, value]           outcome of a proposal
    rr   [ctx, error, index]           read may proceed once `index` is applied
    x    [reason]                      refused (e.g. "busy"): try another member

The session numbers proposals, keeps them pending and retries retryable
failures with the SAME (client_id, seq) (the cluster's sessions make that
exactly-once), applies the stream of committed entries in index order through
its own copy of the cluster's session table (a retried command may sit twice
in the log; every replica, and so every client, applies it once), and
resubscribes when it detects a gap. It does no I/O: the runtime calls
receive()/tick()/connected()/disconnected() and sends take_outbox().
"""
import json

from .codec import MAX_CLIENT, MAX_INT, MAX_TEXT, SEP, IncomingSnapshot, json_size, text_piece
from .membership import config_problem
from .sessions import Sessions, apply_entries

TAG = "wc"
VERSION = 1

# Which fields each message type carries (after ["wc", VERSION, type]).
FIELD_COUNT = {"sub": 1, "p": 2, "r": 1, "sid": 1, "st": 3, "e": 2, "s": 4, "pr": 3, "rr": 3,
               "x": 1}
TO_MEMBER = ("sub", "p", "r", "sid")
TO_CLIENT = ("st", "e", "s", "sid", "pr", "rr", "x")
# Error codes a member may report: the core's, plus the hub's own.
ERRORS = ("no_leader", "leadership_lost", "too_many_pending", "too_large",
          "timeout", "session_expired", "invalid", "busy", "halted")
RETRYABLE = ("no_leader", "leadership_lost", "timeout", "too_many_pending", "busy", "halted")
MAX_ITEMS = 10000  # entries per "e" message
MAX_REASON = 200
CHUNK_BUDGET = 60000  # bytes of one encoded snapshot chunk message (< 64 KiB channel limit)


class ClientDecodeError(ValueError):
    pass


def is_client_id(pid):
    """Client ids are "c" + 4..31 letters/digits; member ids never start with c."""
    return (type(pid) is str and 5 <= len(pid) <= 32 and pid[0] == "c"
            and all(ch.isalpha() or ch.isdigit() for ch in pid[1:]))


def session_id(client_id, n):
    """The client id the cluster's session table knows session n of a client
    window by: its channel id, then "<channel id>.<n>" (no channel id has a
    ".", so no window can pose as another's session)."""
    return client_id if n == 0 else client_id + "." + str(n)


def session_owner(sid):
    """The channel id of a client window's session id (session_id's inverse)."""
    dot = sid.find(".")
    return sid if dot < 0 else sid[:dot]


def encode(msg):
    """[type, ...fields] -> wire text."""
    return json.dumps([TAG, VERSION] + msg, separators=SEP)


def _uint(x):
    return type(x) is int and 0 <= x <= MAX_INT


def _json_ok(x):
    return json_size(x, 0) >= 0


def problem(msg):
    """None if msg ([type, ...fields]) is well formed, else why not."""
    if type(msg) is not list or not msg:
        return "not a list"
    t = msg[0]
    if type(t) is not str or t not in FIELD_COUNT:
        return "unknown type"
    if len(msg) != 1 + FIELD_COUNT[t]:
        return "wrong field count"
    f = msg[1:]
    if t == "sub":
        return None if _uint(f[0]) else "bad index"
    if t == "p":
        if type(f[0]) is not int or not 1 <= f[0] <= MAX_INT:
            return "bad sequence number"
        return None if _json_ok(f[1]) else "command is not JSON"
    if t == "r":
        return None if _uint(f[0]) else "bad read context"
    if t == "sid":
        return None if type(f[0]) is int and 1 <= f[0] <= MAX_INT else "bad session number"
    if t == "st":
        if f[0] is not None and (type(f[0]) is not str or not 0 < len(f[0]) <= 64):
            return "bad leader id"
        if type(f[1]) is not int or f[1] not in (0, 1):
            return "bad quorum flag"
        return None if _uint(f[2]) else "bad index"
    if t == "e":
        # Runs once per streamed entry: types only (decoded JSON is JSON).
        first, entries = f
        if not _uint(first) or first < 1:
            return "bad index"
        if type(entries) is not list or len(entries) > MAX_ITEMS:
            return "bad entries"
        for e in entries:
            if type(e) is not list or len(e) != 4 or not _uint(e[0]):
                return "bad entry"
            cl = e[1]
            if cl is None:
                # a no-op, or a configuration entry (its outcome goes in the
                # session table, as on the members)
                if e[3] is not None and config_problem(e[3], True) is not None:
                    return "bad configuration entry"
                continue
            if type(cl) is not str or not 0 < len(cl) <= MAX_CLIENT:
                return "bad client id"
            if type(e[2]) is not int or not 1 <= e[2] <= MAX_INT:
                return "bad sequence number"
        return None
    if t == "s":
        if not _uint(f[0]) or f[0] < 1 or not _uint(f[1]):
            return "bad index"
        if type(f[2]) is not int or f[2] not in (0, 1):
            return "bad done flag"
        return None if type(f[3]) is str else "bad chunk"
    if t == "pr":
        if type(f[0]) is not int or not 1 <= f[0] <= MAX_INT:
            return "bad sequence number"
        if f[1] is not None and (type(f[1]) is not str or f[1] not in ERRORS):
            return "unknown error code"
        return None if _json_ok(f[2]) else "value is not JSON"
    if t == "rr":
        if not _uint(f[0]):
            return "bad read context"
        if f[1] is not None and (type(f[1]) is not str or f[1] not in ERRORS):
            return "unknown error code"
        return None if _uint(f[2]) else "bad index"
    # "x"
    return None if type(f[0]) is str and len(f[0]) <= MAX_REASON else "bad reason"


def decode(text, allowed):
    """Wire text -> validated [type, ...fields] whose type is in `allowed`
    (TO_MEMBER on a member, TO_CLIENT on a client); ClientDecodeError else."""
    if type(text) is not str:
        raise ClientDecodeError("not text")
    if len(text) > MAX_TEXT:
        raise ClientDecodeError("message too long")
    try:
        raw = json.loads(text)
    except Exception:
        raise ClientDecodeError("malformed JSON")
    if type(raw) is not list or len(raw) < 3 or raw[0] != TAG:
        raise ClientDecodeError("not a client protocol message")
    if raw[1] != VERSION or type(raw[1]) is not int:
        raise ClientDecodeError("unsupported client protocol version")
    msg = raw[2:]
    err = problem(msg)
    if err is None and msg[0] not in allowed:
        err = "message type not allowed in this direction"
    if err is not None:
        raise ClientDecodeError(err)
    return msg


def snapshot_chunks(index, text, budget=CHUNK_BUDGET):
    """Cut a snapshot's JSON text into encoded "s" messages of <= budget
    bytes each (the piece is escaped again inside the message: measured by
    the core's one cutter, codec.text_piece)."""
    out = []
    start = 0
    while True:
        # Bytes of the message around the piece (ASCII; "" counts 2 of them).
        around = len(encode(["s", index, start, 0, ""])) - 2
        piece = text_piece(text, start, budget - around)
        done = 1 if start + len(piece) >= len(text) else 0
        out.append(encode(["s", index, start, done, piece]))
        if done:
            return out
        start += len(piece)


class _Proposal:
    """A proposal of ours in flight (ClientSession.pending[seq])."""

    def __init__(self, command, now):
        self.command = command
        self.first_ms = now       # when the app asked: it gives up GIVE_UP_MS later
        self.next_ms = now        # when to send it (again)
        self.attempts = 0
        self.error = None         # the last retryable error


class _Read:
    """A read of ours in flight (ClientSession.reads[ctx])."""

    def __init__(self, now):
        self.first_ms = now
        self.next_ms = now
        self.attempts = 0
        self.index = None         # granted: done once our stream applied it
        self.error = None


class ClientSession:
    """One client incarnation's view of the cluster (see module docstring).

    state: object with apply(command) and restore(data) (the app's state,
    wrapped so apply never raises). on_applied(first, entries) is called after
    each applied batch, like a member's (entries [term, client, seq, command]
    at first, first + 1, ...); on_restored(index)
    after a snapshot replaced the state.
    """

    RETRY_MS = (150, 1000)     # backoff of a retryable failure, doubling
    RESEND_MS = 15000          # no answer at all for this long: send again
    GIVE_UP_MS = 30000         # a request with no final outcome by then fails
    RESYNC_MS = 3000           # a resubscription unanswered this long is repeated
    MAX_PENDING = 64           # proposals in flight (the member allows more)

    def __init__(self, client_id, state, now_ms=0, on_applied=None, on_restored=None):
        if not is_client_id(client_id):
            raise ValueError("client id must be c + 4..31 letters/digits, got %r" % (client_id,))
        self.client_id = client_id
        # The cluster knows our writes by session_id (start_new_session);
        # a member's "pr" before it confirmed our session is an older one's.
        self.session = 0
        self.session_id = client_id
        self.session_confirmed = True
        self.state = state
        self.on_applied = on_applied
        self.on_restored = on_restored
        self.now = now_ms
        self.member = None          # member we are attached to (channel up)
        self.applied_index = 0
        self.sessions = Sessions(256)  # the cluster's default window until a snapshot says
        self.member_status = None   # [leader, quorum, voters] from the member
        self.next_seq = 1
        self.next_ctx = 1
        self.pending = {}           # seq -> _Proposal
        self.reads = {}             # ctx -> _Read
        self.done = []              # ["p", seq, error, value] / ["r", ctx, error]
        self.outbox = []
        self.snap = None            # the IncomingSnapshot being received
        self.resync_at = None       # when we last (re)subscribed, until data arrives
        # After (re)connecting, proposals wait until our stream is in step
        # with the member (or RESYNC_MS): any of ours that committed while we
        # were away then shows up in the stream and is answered from it,
        # instead of being sent again (which would put a second copy in the log).
        self.held_since = None
        self.stats = {"dropped_malformed": 0, "dropped_unexpected": 0, "gaps": 0,
                      "resubscribes": 0, "retries": 0, "snapshots": 0, "refused": 0,
                      "bad_snapshots": 0, "late_results": 0, "new_sessions": 0}

    # ---- requests from the app ---------------------------------------
    def propose(self, command):
        """Queue a command; returns its seq, or None when too many are in
        flight (the caller waits and tries again). Outcome: take_done()."""
        if len(self.pending) >= self.MAX_PENDING:
            return None
        seq = self.next_seq
        self.next_seq += 1
        self.pending[seq] = _Proposal(command, self.now)
        self._send_proposal(seq)
        return seq

    def read(self):
        """Start a linearizable read; returns its ctx. Done (in take_done())
        once the local state has applied the member's read index."""
        ctx = self.next_ctx
        self.next_ctx += 1
        self.reads[ctx] = _Read(self.now)
        self._send_read(ctx)
        return ctx

    def take_outbox(self):
        out, self.outbox = self.outbox, []
        return out

    def take_done(self):
        out, self.done = self.done, []
        return out

    @property
    def writable(self):
        st = self.member_status
        return self.member is not None and st is not None and st[1] == 1

    # ---- the connection ----------------------------------------------
    def connected(self, member, now_ms):
        """The channel to `member` is open: subscribe, send what is pending."""
        self.now = now_ms
        self.member = member
        self.member_status = None
        self.snap = None
        self._subscribe()
        if self.session:
            self._send_session()
        self.held_since = now_ms if self.pending else None
        for ctx in sorted(self.reads):
            r = self.reads[ctx]
            if r.index is None:  # an index already granted stays valid anywhere
                r.next_ms = now_ms
                self._send_read(ctx)

    def disconnected(self, now_ms):
        self.now = now_ms
        self.member = None
        self.member_status = None
        self.snap = None
        self.outbox = []  # nothing can be sent; connected() sends it all again

    def _subscribe(self):
        self.resync_at = self.now
        self.stats["resubscribes"] += 1
        self.outbox.append(encode(["sub", self.applied_index + 1]))

    def _release_held(self):
        """Our stream is in step (or we waited long enough): send what is
        still pending, with the same seqs."""
        if self.held_since is None:
            return
        self.held_since = None
        for seq in sorted(self.pending):
            self._send_proposal(seq)

    def _send_proposal(self, seq):
        p = self.pending[seq]
        if self.member is not None and self.held_since is None:
            p.attempts += 1
            self.outbox.append(encode(["p", seq, p.command]))
        p.next_ms = self.now + self.RESEND_MS

    def _send_read(self, ctx):
        r = self.reads[ctx]
        if self.member is not None:
            r.attempts += 1
            self.outbox.append(encode(["r", ctx]))
        r.next_ms = self.now + self.RESEND_MS

    # ---- time ---------------------------------------------------------
    def tick(self, now_ms):
        """Retries, resends and give-ups that are due."""
        self.now = now_ms
        if self.held_since is not None and now_ms - self.held_since >= self.RESYNC_MS:
            self._release_held()
        for seq in sorted(self.pending):
            p = self.pending[seq]
            if now_ms - p.first_ms >= self.GIVE_UP_MS:
                del self.pending[seq]
                self.done.append(["p", seq, p.error or "timeout", None])
            elif now_ms >= p.next_ms and self.member is not None:
                self.stats["retries"] += 1
                self._send_proposal(seq)
        for ctx in sorted(self.reads):
            r = self.reads[ctx]
            if now_ms - r.first_ms >= self.GIVE_UP_MS:
                # Also a read whose index our stream never reached: every read ends.
                del self.reads[ctx]
                self.done.append(["r", ctx, r.error or "timeout"])
            elif r.index is None and now_ms >= r.next_ms and self.member is not None:
                self._send_read(ctx)
        if (self.member is not None and self.resync_at is not None
                and now_ms - self.resync_at >= self.RESYNC_MS):
            self._subscribe()

    # ---- from the member ----------------------------------------------
    def receive(self, text, now_ms):
        """One message from our member; malformed ones are dropped, counted."""
        self.now = now_ms
        try:
            msg = decode(text, TO_CLIENT)
        except ClientDecodeError:
            self.stats["dropped_malformed"] += 1
            return
        t = msg[0]
        if t == "e":
            self.handle_entries(msg[1], msg[2])
        elif t == "s":
            self.handle_snapshot_chunk(msg[1], msg[2], msg[3], msg[4])
        elif t == "pr":
            self.handle_proposal_result(msg[1], msg[2], msg[3])
        elif t == "rr":
            self.handle_read_reply(msg[1], msg[2], msg[3])
        elif t == "st":
            self.member_status = [msg[1], msg[2], msg[3]]
        elif t == "sid":
            if msg[1] == self.session:
                self.session_confirmed = True
            else:
                self.stats["dropped_unexpected"] += 1
        else:  # "x": the member refuses us; the runtime picks another
            self.stats["refused"] += 1
            self.member_status = None

    def handle_entries(self, first, entries):
        """Apply committed entries in order; a gap means we missed some
        (the member cut our stream): resubscribe from what we have."""
        last = first + len(entries) - 1
        if self.snap is not None:
            self.stats["dropped_unexpected"] += 1
            return
        applied = self.applied_index
        if first > applied + 1:
            self.stats["gaps"] += 1
            if self.resync_at is None:
                self._subscribe()
            return
        self.resync_at = None  # the stream continues from what we have
        if last <= applied:
            self._release_held()
            return  # all seen (a resubscription overlaps the stream)
        fresh = entries[applied + 1 - first:] if first <= applied else entries
        me = self.session_id
        mine = dict(((me, seq), None) for seq in self.pending) if self.pending else None
        done = []
        # The members' own apply loop, on our copy of the session table.
        apply_entries(self.sessions, applied + 1, fresh, self.state, mine, done)
        for _, seq, err, result in done:
            # Ours: the result is our own apply's, as on any replica.
            self._finish(seq, err, result)
        self.applied_index = last
        self._release_reads()
        self._release_held()
        if self.on_applied is not None:
            self.on_applied(applied + 1, fresh)

    def handle_snapshot_chunk(self, index, offset, done, piece):
        snap = self.snap
        if offset == 0:
            snap = self.snap = IncomingSnapshot(index, None)
        elif snap is None or snap.index != index or snap.size != offset:
            self.stats["gaps"] += 1
            self.snap = None
            self._subscribe()
            return
        snap.parts.append(piece)
        snap.size += len(piece)
        if not done:
            return
        self.snap = None
        if index <= self.applied_index:
            self.resync_at = None
            return  # we already have all of it
        try:
            data = json.loads("".join(snap.parts))
            window = data.get("window", 256)
            sessions = Sessions(window if type(window) is int and window >= 1 else 256)
            sessions.restore(data["sessions"])
            self.state.restore(data["sm"])
        except Exception:
            # A member sends what its own node restores from; this is damage.
            self.stats["bad_snapshots"] += 1
            self._subscribe()
            return
        self.sessions = sessions
        self.applied_index = index
        self._answer_from_sessions()
        self.resync_at = None
        self.stats["snapshots"] += 1
        self._release_reads()
        self._release_held()
        if self.on_restored is not None:
            self.on_restored(index)

    def _answer_from_sessions(self):
        """After a snapshot: our proposals it covers are answered from its
        session table (what every replica would answer for a retry)."""
        for seq in sorted(self.pending):
            out = self.sessions.outcome(self.session_id, seq) if seq in self.pending else None
            if out is not None:
                self._finish(seq, out[0], out[1])

    def handle_proposal_result(self, seq, error, value):
        p = self.pending.get(seq) if self.session_confirmed else None
        if p is None:
            self.stats["late_results"] += 1  # answered from our stream already
            return
        if error is not None and error in RETRYABLE:
            p.error = error
            lo, hi = self.RETRY_MS
            p.next_ms = self.now + min(hi, lo << min(p.attempts, 8))
            return
        self._finish(seq, error, value)

    def _finish(self, seq, error, value):
        """A final outcome for our proposal `seq`."""
        if seq not in self.pending:
            return  # ended with an older session (start_new_session)
        del self.pending[seq]
        self.done.append(["p", seq, error, value])
        if error == "session_expired" and not self.sessions.knows(self.session_id):
            # (known: only that seq was older than our window.) Our copy of
            # the table may lag a member's answer; then the next write's
            # answer, or our own apply of it, renews.
            self.start_new_session()

    def start_new_session(self):
        """The cluster forgot our session (raft/API.md, session expiry):
        every proposal still pending under it ends the same way (it may or
        may not have been applied), and later ones go as a new client of the
        cluster: session n + 1 (session_id), seq 1 again."""
        for seq in sorted(self.pending):
            self.done.append(["p", seq, "session_expired", None])
        self.pending = {}
        self.session += 1
        self.session_id = session_id(self.client_id, self.session)
        self.next_seq = 1
        self.stats["new_sessions"] += 1
        if self.member is not None:
            self._send_session()

    def _send_session(self):
        self.session_confirmed = False
        self.outbox.append(encode(["sid", self.session]))

    def handle_read_reply(self, ctx, error, index):
        r = self.reads.get(ctx)
        if r is None or r.index is not None:
            self.stats["dropped_unexpected"] += 1
            return
        if error is not None:
            if error not in RETRYABLE:
                del self.reads[ctx]
                self.done.append(["r", ctx, error])
                return
            r.error = error
            lo, hi = self.RETRY_MS
            r.next_ms = self.now + min(hi, lo << min(r.attempts, 8))
            return
        r.index = index
        self._release_reads()

    def _release_reads(self):
        for ctx in sorted(self.reads):
            r = self.reads[ctx]
            if r.index is not None and r.index <= self.applied_index:
                del self.reads[ctx]
                self.done.append(["r", ctx, None])
