"""Member side of client windows (raft/CLIENT.md): the ClientHub serves the
clients attached to this member over their data channels.

- subscribe: a client that is new or behind our log start gets the app
  snapshot (state + session table) at our applied index, chunked so each
  message is <= 60 KB, then the committed entries after it; afterwards every
  applied batch is encoded once and sent to every subscriber in step.
- proposals go to node.propose under the channel's (authenticated) sender as
  client id (or "<sender>.<n>" once the client said "sid n": a new session
  after session_expired): the core forwards them to the leader and its
  sessions make a retry with the same seq exactly-once. The result goes back
  to that client.
- reads: node.read_index on this member; when it is ready the client gets our
  applied index and reads its own state once its stream got that far.
Everything is bounded per client (pending requests, bytes waiting in the
channel): a client that falls behind stops getting live batches and is caught
up from the log (or a snapshot) when its channel drains; it never slows the
voters. Malformed messages are dropped and counted, never raised.

Imports neither js nor pyscript (the driver passes send/backlog functions),
so it runs under CPython in the tests as well.
"""
import json

from raft import client as proto
from raft.codec import SEP

MAX_CLIENTS = 32          # clients one member serves; more are told "busy"
MAX_PENDING = 128         # proposals + reads in flight per client
LIVE_MAX_BYTES = 512 * 1024   # channel backlog above which live batches are held back
PUMP_MAX_BYTES = 256 * 1024   # catching up sends while the backlog is below this
MESSAGE_BUDGET = 60000    # bytes of one encoded message


class _Sub:
    """One attached client."""

    def __init__(self, peer):
        self.peer = peer
        self.next = None      # next index owed to it; None until it subscribes
        self.chunks = []      # snapshot messages still to send
        self.pending = {}     # seq -> True, proposals in flight
        self.session = 0      # its session number ("sid"); its writes' client id:
        self.session_id = peer  # proto.session_id(peer, session)
        self.reads = {}       # core read ctx -> client ctx
        self.status = None    # last [leader, quorum, voters] sent


def batch_messages(first, entries):
    """Encoded "e" messages for committed entries first.., as they are in
    the log (the client skips no-ops and configuration entries, whose client
    is None): one json.dumps per batch, no work per entry. Halved until each
    message is <= MESSAGE_BUDGET bytes."""
    wire = proto.encode(["e", first, entries])
    if len(wire) <= MESSAGE_BUDGET // 4 or len(wire.encode()) <= MESSAGE_BUDGET:
        return [wire]
    if len(entries) <= 1:
        # The core caps an entry below one message; never send what the
        # channel would refuse.
        raise ValueError("entry %d does not fit one message" % first)
    mid = len(entries) // 2
    return batch_messages(first, entries[:mid]) + batch_messages(first + mid, entries[mid:])


class ClientHub:
    def __init__(self, node, send, backlog=None, timer=None):
        self.node = node
        self.send = send            # send(peer, text) -> bool
        self.backlog = backlog      # backlog(peer) -> bytes waiting in its channel
        # timer() -> float ms: when given, stats["busy_ms"] adds up the time
        # spent streaming to clients (what clients cost this member's thread)
        self.timer = timer
        self.subs = {}
        self.stats = {"clients": 0, "dropped_malformed": 0, "refused_busy": 0,
                      "proposals": 0, "reads": 0, "batches_sent": 0, "snapshots_sent": 0,
                      "held_back": 0, "send_failed": 0, "too_many_pending": 0,
                      "answered_by_stream": 0, "busy_ms": 0.0}

    # ---- from the transport (via the driver) -------------------------
    def on_message(self, peer, text):
        try:
            msg = proto.decode(text, proto.TO_MEMBER)
        except proto.ClientDecodeError:
            self.stats["dropped_malformed"] += 1
            return
        sub = self.subs.get(peer)
        if sub is None:
            if len(self.subs) >= MAX_CLIENTS:
                self.stats["refused_busy"] += 1
                self._send(peer, proto.encode(["x", "busy"]))
                return
            sub = self.subs[peer] = _Sub(peer)
            self.stats["clients"] = len(self.subs)
        t = msg[0]
        if t == "sub":
            self.handle_subscribe(sub, msg[1])
        elif t == "p":
            self.handle_proposal(sub, msg[1], msg[2])
        elif t == "sid":
            self.handle_new_session(sub, msg[1])
        else:
            self.handle_read(sub, msg[1])

    def on_peer(self, peer, up):
        if not up and self.subs.pop(peer, None) is not None:
            self.stats["clients"] = len(self.subs)

    # ---- requests ------------------------------------------------------
    def handle_subscribe(self, sub, from_index):
        sub.next = max(1, from_index)
        sub.chunks = []
        sub.status = None
        self._send_status(sub)
        if sub.next == self.node.applied_index + 1:
            # In step already: say so, so the client knows its stream is on.
            self._send(sub.peer, proto.encode(["e", sub.next, []]))
        self.pump(sub)

    def handle_proposal(self, sub, seq, command):
        if seq in sub.pending:
            return  # in flight here already; its outcome will come
        if len(sub.pending) + len(sub.reads) >= MAX_PENDING:
            self.stats["too_many_pending"] += 1
            self._send(sub.peer, proto.encode(["pr", seq, "too_many_pending", None]))
            return
        sub.pending[seq] = True
        self.stats["proposals"] += 1
        # The client id is the channel's sender's: a client cannot pose as another.
        self.node.propose(sub.session_id, seq, command)

    def handle_new_session(self, sub, n):
        """The client goes on as session n (its old one expired): its writes
        get a new client id; what is in flight under the old one is no
        longer answered here (the client ended it as session_expired). The
        confirmation tells the client that every outcome after it is the new
        session's."""
        if n < sub.session:
            return  # older than the one it has: nothing changes
        if n > sub.session:
            sub.session = n
            sub.session_id = proto.session_id(sub.peer, n)
            sub.pending = {}
        self._send(sub.peer, proto.encode(["sid", n]))

    def handle_read(self, sub, ctx):
        if len(sub.pending) + len(sub.reads) >= MAX_PENDING:
            self.stats["too_many_pending"] += 1
            self._send(sub.peer, proto.encode(["rr", ctx, "too_many_pending", 0]))
            return
        key = sub.peer + ":" + str(ctx)
        sub.reads[key] = ctx
        self.stats["reads"] += 1
        self.node.read_index(key)

    # ---- from the driver's Ready loop ---------------------------------
    def on_result(self, client_id, seq, error, value):
        """A proposal's outcome for one of our clients (rd.results)."""
        sub = self.subs.get(proto.session_owner(client_id))
        if sub is None or sub.session_id != client_id or sub.pending.pop(seq, None) is None:
            return  # client gone (it retries with the same seq elsewhere), or an old session
        if error is None and sub.next == self.node.applied_index + 1 and not sub.chunks:
            # Its stream already carried the entry (sent in on_applied, just
            # before results): the client answers itself from its own apply.
            self.stats["answered_by_stream"] += 1
            return
        try:
            text = proto.encode(["pr", seq, error, value])
        except Exception:
            text = None
        if text is None or len(text.encode()) > MESSAGE_BUDGET:
            # committed, but the app's result cannot travel: say so, finally
            text = proto.encode(["pr", seq, "invalid", "result too large to send"])
        self._send(sub.peer, text)

    def on_read(self, key, error):
        """rd.reads entry whose ctx is one of ours ("<client>:<ctx>")."""
        if not isinstance(key, str) or ":" not in key:
            return False
        peer = key[:key.rfind(":")]
        sub = self.subs.get(peer)
        if sub is None or key not in sub.reads:
            return True
        ctx = sub.reads.pop(key)
        self._send(peer, proto.encode(["rr", ctx, error, self.node.applied_index]))
        return True

    def on_applied(self, first, entries):
        """After node.advance applied entries first..: stream them, encoded
        once, to every subscriber that is in step (the rest catch up)."""
        if not self.subs:
            return
        t0 = self.timer() if self.timer is not None else None
        self._stream(first, entries)
        if t0 is not None:
            self.stats["busy_ms"] += self.timer() - t0

    def _stream(self, first, entries):
        texts = None
        last = first + len(entries) - 1
        for sub in list(self.subs.values()):
            if sub.next != first or sub.chunks or first == 1:
                # (from index 1: a new client gets the snapshot first, which
                # carries the session table's limits, so it expires sessions
                # as we do)
                self.pump(sub)
                continue
            if self._backlog(sub.peer) > LIVE_MAX_BYTES:
                self.stats["held_back"] += 1  # pump() catches it up later
                continue
            if texts is None:
                texts = batch_messages(first, entries)
            for text in texts:
                if not self._send(sub.peer, text):
                    break
            else:
                sub.next = last + 1
                self.stats["batches_sent"] += 1

    def tick(self):
        """Catch up lagging subscribers; tell every one of a status change."""
        t0 = self.timer() if self.timer is not None else None
        for sub in list(self.subs.values()):
            self._send_status(sub)
            if sub.next is not None and (sub.chunks or sub.next <= self.node.applied_index):
                self.pump(sub)
        if t0 is not None:
            self.stats["busy_ms"] += self.timer() - t0

    # ---- catching up ---------------------------------------------------
    def pump(self, sub):
        """Send what `sub` is owed (snapshot chunks, then log entries) while
        its channel backlog stays under PUMP_MAX_BYTES."""
        node = self.node
        if sub.next is None:
            return
        while self._backlog(sub.peer) < PUMP_MAX_BYTES:
            if sub.chunks:
                if not self._send(sub.peer, sub.chunks[0]):
                    return
                sub.chunks.pop(0)
                continue
            applied = node.applied_index
            if sub.next > applied:
                return
            if sub.next < node.first_index() or sub.next == 1:
                # compacted away, or a new client: the state is shorter than
                # the log. The session table goes too: the client applies
                # later entries through it, exactly as we do.
                data = node.snapshot_state()
                snap = {"sm": data["sm"], "sessions": data["sessions"],
                        "window": node.cfg.session_window}
                text = json.dumps(snap, separators=SEP)
                sub.chunks = proto.snapshot_chunks(applied, text)
                sub.next = applied + 1
                self.stats["snapshots_sent"] += 1
                continue
            hi = min(applied, sub.next + 511)
            texts = batch_messages(sub.next, node.entries(sub.next, hi))
            for text in texts:
                if not self._send(sub.peer, text):
                    return
            sub.next = hi + 1

    # ---- helpers ---------------------------------------------------------
    def _send_status(self, sub):
        node = self.node
        st = [node.leader_id, 1 if node.has_quorum else 0, len(node.voters)]
        if st != sub.status:
            sub.status = st
            self._send(sub.peer, proto.encode(["st"] + st))

    def _backlog(self, peer):
        return self.backlog(peer) if self.backlog is not None else 0

    def _send(self, peer, text):
        try:
            ok = self.send(peer, text)
        except Exception:
            ok = False
        if not ok:
            self.stats["send_failed"] += 1
        return ok
