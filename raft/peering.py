"""How a node keeps one data channel to each peer: the rules both transports
share, so a window (raft/browser/transport.py, the browser's WebRTC) and the
CPython replica (raft/replica/transport.py, aiortc) speak the same wire:
introducer protocol v2 (signaling/PROTOCOL.md), signals, who offers and who
asks, backoff, keepalive, limits (raft/browser/TRANSPORT.md).

Pure: no js, asyncio, time or random. A host transport subclasses Peering and
gives it what only it can do:

    _now() -> ms (monotonic)       _rand() -> float in [0, 1)
    _nonce() -> 32 hex chars       from the platform's cryptographic random source
    _spawn(coro) -> task           _cancel(task)       (the replica's; default: none)
    _new_channel(peer, sid)        a Channel subclass, its events wired to
                                   _channel_opened / _channel_closed / _on_ctl
    _close_channel(conn)           _drain(peer)        (send what waits in peer.queue)
    _ws_send(frame) -> bool        _abandon_ws()       (end this socket as if it closed:
                                                        the host reconnects unless fatal)

and tells it what happens: _introducer_opening() before each socket attempt,
_on_ws_message(text) for each frame, _introducer_closed(code) when the
socket is gone (False: fatal, do not reconnect), _tick() every TICK_MS.
With a cluster key (raft/cluster_key.py) every signal is sealed and every
channel starts with a proof each way; the channel is "open" (peer up) only
once the far end's proof verified, and anything else first is refused.
Runs under CPython, MicroPython and Pyodide (tests/raft/test_peering.py).
"""

import hashlib
import hmac
import json

from . import cluster_key
from .client import is_client_id

MAX_MESSAGE_BYTES = 65536  # keep heartbeats from waiting behind one huge message
HIGH_WATER_BYTES = 1 << 20  # queue in the host above this bufferedAmount
LOW_WATER_BYTES = 256 * 1024  # ... and drain when it falls to this
QUEUE_LIMIT_BYTES = 4 << 20  # beyond this a slow peer loses messages, not memory

TICK_MS = 500  # how often every peer's connection is checked
CONNECT_TIMEOUT_MS = 8000  # an attempt that has not opened by then is retried
ASK_AFTER_MS = 1200  # the answering side waits this long for an offer before asking
# A closed or crashed peer's channel can look open for 15-30 s (until ICE
# consent fails). So a channel silent for PING_AFTER_MS gets a ping on the
# control channel every tick, and one silent for DEAD_AFTER_MS is closed and
# re-made. Silent means: no message, no pong, and no bytes at the network
# level (a peer busy with a backlog of messages answers late, but its SCTP
# acks).
PING_AFTER_MS = 1500
DEAD_AFTER_MS = 6000
BYE = "bye"  # on the control channel: this window or process is going away
PEER_BACKOFF_MS = (250, 10000)
INTRODUCER_BACKOFF_MS = (500, 15000)
# From opening the introducer socket to its welcome (the server's own join
# deadline is 10 s): a server that accepts and then says nothing is left
# and retried, like one that cannot be reached.
INTRODUCER_DEADLINE_MS = 15000

PROTOCOL_VERSION = 2  # signaling/PROTOCOL.md
CLOSE_AUTH = 4401
CLOSE_ID_HELD = 4403
CLOSE_REPLACED = 4409
FATAL_CODES = ("auth_required", "auth_failed", "replaced", "id_held")
FRAME_TYPES = ("hello", "welcome", "presence", "signal", "ice", "pong", "error")
SIGNAL_TYPES = ("offer", "answer", "ice", "ask")
TOKEN_KEY = "wraft.token:"  # + cluster + ":" + node, in the host's key/value store


class MessageTooLarge(ValueError):
    pass


def check_message(text):
    """send()'s argument rule: a str of at most MAX_MESSAGE_BYTES UTF-8 bytes."""
    if not isinstance(text, str):
        raise TypeError("send() takes str, got " + type(text).__name__)
    if len(text) > MAX_MESSAGE_BYTES // 4:  # only then can the UTF-8 form be too big
        n = len(text.encode())
        if n > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(
                "message of %d bytes is over the %d-byte limit" % (n, MAX_MESSAGE_BYTES))


def backoff_delay(attempt, limits, rand):
    """Exponential backoff with jitter: half fixed, half random (rand() in [0, 1))."""
    base, cap = limits
    d = base * (1 << min(attempt, 16))
    if d > cap:
        d = cap
    return d / 2 + rand() * d / 2


def join_proof(secret, nonce, cluster, node, kind):
    """The join frame's proof of the access secret (PROTOCOL.md, Access
    secret). hmac and hashlib are frozen into PyScript's MicroPython, with
    CPython's digests."""
    msg = "\n".join(("wraft-join-v2", nonce, cluster, node, kind))
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def join_frame(hello, cluster, node, kind, token, secret):
    """The join answering a `hello` frame: (frame, None), or (None, why):
    "auth_required" when the server wants a proof and we have no secret,
    "bad_hello" when the hello is malformed."""
    frame = {"type": "join", "v": PROTOCOL_VERSION, "cluster": cluster, "node": node,
             "kind": kind}
    if token:
        frame["token"] = token
    if hello.get("access") == "secret":
        nonce = hello.get("nonce")
        if not secret:
            return None, "auth_required"
        if not isinstance(nonce, str) or not nonce:
            return None, "bad_hello"
        frame["proof"] = join_proof(secret, nonce, cluster, node, kind)
    return frame, None


def parse_frame(text):
    """An introducer frame: a dict with a known "type", or None."""
    try:
        frame = json.loads(text)
    except Exception:
        return None
    if not isinstance(frame, dict) or frame.get("type") not in FRAME_TYPES:
        return None
    return frame


def valid_signal(sender, data, me):
    """A relayed signal we may act on: from another node, a known kind."""
    return (isinstance(sender, str) and sender != me and isinstance(data, dict)
            and data.get("t") in SIGNAL_TYPES)


def is_candidate_json(text):
    """An ICE candidate as RTCIceCandidate JSON text, {"candidate": "...", ...}."""
    if not isinstance(text, str):
        return False
    try:
        obj = json.loads(text)
    except Exception:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("candidate"), str)


class Channel:
    """One connection attempt (session `sid`) to a peer. The host's subclass
    holds the peer connection and its two negotiated, ordered channels
    ("raft" id 0 for messages, "ctl" id 1 for keepalive) and implements:

        async make_local(kind) -> sdp   create the offer/answer, set it as
                                        local description, return its SDP
        async set_remote(kind, sdp)
        parse_ice(text) -> candidate    a relayed candidate (ValueError if
                                        bad; None: end of candidates)
        async add_ice(candidate)
        ctl_send(text)                  never raises
        async bytes_received() -> value or None (network-level sign of life)
        send(text) -> bool              on the "raft" channel; never raises

    With a cluster key, the raft channel's first message each way is the
    channel proof; the host hands every message that comes while the
    channel is not yet open to Peering._on_unproven(peer, conn, text).
    """

    def __init__(self, sid, now):
        self.sid = sid
        self.started_ms = now
        self.rx = 0  # messages heard on either channel; compared on each tick
        self.rx_seen = 0
        self.heard_ms = now
        self.net_seen = None  # last bytes_received() value
        self.probing = False
        self.probe_task = None
        self.open = False
        self.closed = False
        self.remote_set = False
        self.local_sent = False
        self.pending_ice = []  # remote candidates before the remote description
        self.outgoing_ice = []  # local candidates before our description went out
        # keyed clusters: what the channel proof covers (raft/cluster_key.py)
        self.offer_sdp = None
        self.answer_sdp = None
        self.offer_nonce = None
        self.answer_nonce = None
        self.proof_sent = False


class Peer:
    """What we know of one peer: its current channel, queued texts, retries."""

    def __init__(self, pid):
        self.id = pid
        self.conn = None
        self.up = False
        self.inbox = []  # signals (and local "connect" requests), applied in order
        self.working = False
        self.work_started_ms = 0
        self.task = None
        self.queue = []  # outgoing texts waiting for bufferedAmount to fall
        self.queued_bytes = 0
        self.attempts = 0
        self.next_try_ms = 0
        self.missing_since_ms = None  # when we first saw it present without a channel


STATS = ("sent", "received", "queued", "dropped_no_channel", "dropped_queue_full",
         "dropped_on_close", "dropped_binary", "callback_errors", "bad_signals",
         "signal_errors", "offers", "channels_opened", "silent_peers_closed", "peers_said_bye",
         "ice_errors",
         "introducer_attempts", "introducer_connects", "introducer_timeouts",
         "bad_seals", "unsealed_signals", "sealed_signals", "bad_proofs", "proofs_verified")


class Peering:
    # Words for the fatal closes, per host (a window is replaced by a reload).
    REPLACED_WHY = "another process joined as node "
    SECRET_HINT = "this server needs its access secret"

    def __init__(self, cluster, node, on_message, on_peer=None, on_presence=None,
                 ice_servers=None, secret=None, wants=None, ask_after_ms=ASK_AFTER_MS,
                 tokens=None, key=None):
        if not isinstance(cluster, str) or not isinstance(node, str):
            raise TypeError("cluster and node must be str")
        # The cluster key (None: an "open" cluster, whoever reaches the
        # introducer can join). Never sent anywhere: it seals signals and
        # proves channels (raft/cluster_key.py).
        self.key = cluster_key.check_key(key) if key is not None else None
        self._pair_keys = {}  # peer kind (True: client id) -> key, or None: cannot
        # Why peers and we disagree about the key, in words (None: no sign of it).
        self.key_error = None
        self.cluster = cluster
        self.node = node
        self.kind = "client" if is_client_id(node) else "member"
        self.on_message = on_message
        self.on_peer = on_peer
        self.on_presence = on_presence
        self._ice_fixed = ice_servers
        self.ice_servers = list(ice_servers) if ice_servers is not None else []
        self.ice_error = None  # the last STUN/TURN failure, in words, until a channel opens
        self.secret = secret
        # A member keeps its id's token (tokens: get/set key/value store) so
        # that a restart takes the id back at once; a client id is new each run.
        self.tokens = tokens
        self._token = None
        # Connection policy: wants(peer) says whether we open (offer or ask
        # for) a channel to that present peer on our own; None = every peer.
        # An "ask" from a peer is always answered, wanted or not (a member
        # serves the clients that ask it; TRANSPORT.md).
        self.wants = wants
        self.ask_after_ms = ask_after_ms
        self.presence = []
        self.introducer_up = False
        self.joined_once = False
        self.error = None  # a fatal introducer error code: no reconnecting
        self.last_error = None  # why the introducer is not joined, in words
        self.stats = {k: 0 for k in STATS}
        self._peers = {}
        self._ws_attempts = 0
        self._ws_since_ms = None  # when the current socket attempt began, until its welcome
        self._stopped = True
        self._sid_next = int(self._rand() * (1 << 30))

    # ----- host hooks with a default ---------------------------------------

    def _cancel(self, task):
        pass

    # ----- public API (the host adds send, backlog, close_peer, start, stop)

    def peers_up(self):
        return sorted(p.id for p in self._peers.values() if p.up)

    def refresh(self):
        """The policy (wants) changed: act on it now, not at the next tick."""
        now = self._now()
        for peer in list(self._peers.values()):
            if not peer.up and (self.wants is None or self.wants(peer.id)):
                peer.attempts = 0
                peer.next_try_ms = 0
            self._reconcile(peer, now)

    # ----- introducer ------------------------------------------------------

    def _introducer_opening(self):
        self.stats["introducer_attempts"] += 1
        self._ws_since_ms = self._now()

    def _introducer_retry_ms(self):
        delay = backoff_delay(self._ws_attempts, INTRODUCER_BACKOFF_MS, self._rand)
        self._ws_attempts += 1
        return delay

    def _introducer_closed(self, code):
        """The socket is gone (close code, or None when it never opened):
        True to reconnect, False when that cannot help (fatal)."""
        self.introducer_up = False
        self.presence = []
        self._ws_since_ms = None
        if self._stopped or self.error is not None:
            return False
        if code == CLOSE_REPLACED:
            self._fatal("replaced", self.REPLACED_WHY + self.node)
            return False
        if code == CLOSE_AUTH or code == CLOSE_ID_HELD:
            self._fatal("auth_failed" if code == CLOSE_AUTH else "id_held",
                        "introducer refused the join (code %d)" % code)
            return False
        if code is not None:
            self.last_error = "introducer closed the connection (code %s)" % code
        return True

    def _fatal(self, code, message):
        self.error = code
        self.last_error = message
        print("wraft transport: introducer: " + code + ": " + message)

    def _on_ws_message(self, text):
        frame = parse_frame(text)
        if frame is None:
            self.stats["bad_signals"] += 1
            return
        kind = frame["type"]
        if kind == "signal":
            self._on_signal(frame.get("from"), frame.get("data"))
        elif kind == "presence":
            self._on_presence(frame.get("nodes"))
        elif kind == "hello":
            self._send_join(frame)
        elif kind == "welcome" or kind == "ice":  # ice: fresh short-lived TURN credentials
            if kind == "welcome":
                self._ws_attempts = 0
                self._ws_since_ms = None
                self.introducer_up = True
                self.joined_once = True
                self.last_error = None
                self._keep_token(frame.get("token"))
            if self._ice_fixed is None and isinstance(frame.get("ice_servers"), list):
                self.ice_servers = frame["ice_servers"]
        elif kind == "error":
            code = frame.get("code")
            if code in FATAL_CODES:
                self._fatal(code, str(frame.get("message")))
            elif code != "unknown_target":  # a peer left between presence and signal
                print("wraft transport: introducer error: " + str(frame.get("message")))

    def _token_key(self):
        return TOKEN_KEY + self.cluster + ":" + self.node

    def _send_join(self, hello):
        token = self._token
        if token is None and self.kind == "member" and self.tokens is not None:
            token = self.tokens.get(self._token_key())
        frame, why = join_frame(hello, self.cluster, self.node, self.kind, token, self.secret)
        if why == "auth_required":
            self._fatal(why, self.SECRET_HINT)
            self._abandon_ws()
        elif why is not None:
            self.stats["bad_signals"] += 1
        else:
            self._ws_send(frame)

    def _keep_token(self, token):
        """Keep the welcome's token: a restart presents it to take the id back."""
        if not isinstance(token, str) or token == self._token:
            return
        self._token = token
        if self.kind != "member" or self.tokens is None:
            return  # a client id is new on every start
        try:
            self.tokens.set(self._token_key(), token)
        except Exception as exc:  # full storage: a restart then waits for the id
            print("wraft transport: cannot keep the id token: " + repr(exc))

    def _introducer_overdue(self, now):
        """An attempt that has not been welcomed within the deadline."""
        return (self._ws_since_ms is not None and not self.introducer_up
                and now - self._ws_since_ms > INTRODUCER_DEADLINE_MS)

    def _on_presence(self, nodes):
        if not isinstance(nodes, list):
            self.stats["bad_signals"] += 1
            return
        nodes = sorted(n for n in nodes if isinstance(n, str))
        now = self._now()
        for pid in nodes:
            if pid == self.node:
                continue
            peer = self._peer(pid)
            if pid not in self.presence:  # (re)appeared: try at once
                peer.attempts = 0
                peer.next_try_ms = 0
                peer.missing_since_ms = now
        self.presence = nodes
        for peer in list(self._peers.values()):
            self._reconcile(peer, now)
        self._callback(self.on_presence, nodes)

    def _on_signal(self, sender, data):
        if not isinstance(sender, str) or sender == self.node:
            self.stats["bad_signals"] += 1
            return
        if self.key is not None:
            if not cluster_key.is_sealed(data):
                self.stats["unsealed_signals"] += 1
                self._key_trouble("node %s sends unsealed signals: it has no cluster key "
                                  "(or the introducer forges them)" % sender)
                return
            key = self._key_for(sender)
            if key is None:
                self.stats["bad_seals"] += 1
                self._key_trouble("this node has a client key: it cannot talk to member "
                                  "%s as member id %s (open it as a client window)" % (sender, self.node))
                return
            data = cluster_key.open_signal(key, self.cluster, sender, self.node, data)
            if data is None:
                self.stats["bad_seals"] += 1
                self._key_trouble("signals from node %s do not verify with our cluster key: "
                                  "one of us has another key (or the introducer forges "
                                  "them)" % sender)
                return
        elif cluster_key.is_sealed(data):
            self.stats["sealed_signals"] += 1
            self._key_trouble("node %s seals its signals: this cluster is keyed and we "
                              "have no key (open a link with #key=...)" % sender)
            return
        if not valid_signal(sender, data, self.node):
            self.stats["bad_signals"] += 1
            return
        self._enqueue(self._peer(sender), data)

    def _key_for(self, pid):
        """The key this node and `pid` seal and prove with (cluster_key.pair_key);
        None when ours cannot make it (a client key between member ids)."""
        client = is_client_id(pid)
        if client not in self._pair_keys:
            self._pair_keys[client] = cluster_key.pair_key(self.key, self.kind == "client",
                                                           client)
        return self._pair_keys[client]

    def _key_trouble(self, why):
        if self.key_error != why:
            print("wraft transport: " + why)
        self.key_error = why

    def _signal(self, peer, data):
        if self.key is not None:
            key = self._key_for(peer.id)
            if key is None:  # a client key cannot seal between member ids: say so, send nothing
                self._key_trouble("this node has a client key: it cannot join as member id %s "
                                  "(open it as a client window)" % self.node)
                return
            data = cluster_key.seal_signal(key, self.cluster, self.node, peer.id, data)
        self._ws_send({"type": "signal", "to": peer.id, "data": data})

    # ----- per-peer connection state ---------------------------------------

    def _peer(self, pid):
        peer = self._peers.get(pid)
        if peer is None:
            peer = self._peers[pid] = Peer(pid)
        return peer

    def _i_offer(self, peer):
        """The smaller id (string order) offers: two peers never offer at once."""
        return self.node < peer.id

    def _tick(self):
        now = self._now()
        if self._introducer_overdue(now):
            self.stats["introducer_timeouts"] += 1
            self.last_error = "no welcome from the introducer within %d s" % (
                INTRODUCER_DEADLINE_MS // 1000)
            print("wraft transport: " + self.last_error + ", reconnecting")
            self._ws_since_ms = None
            self._abandon_ws()
        for peer in list(self._peers.values()):
            if peer.up:
                self._check_alive(peer, peer.conn, now)
            self._reconcile(peer, now)
            if peer.queue and peer.up:
                self._drain(peer)

    def _check_alive(self, peer, conn, now):
        """Ping a silent channel; close one that stays silent (peer gone)."""
        if conn.rx != conn.rx_seen:
            conn.rx_seen = conn.rx
            conn.heard_ms = now
            return
        silent = now - conn.heard_ms
        if silent > DEAD_AFTER_MS:
            self.stats["silent_peers_closed"] += 1
            print("wraft transport: peer " + peer.id + " silent for %d ms, closing" % silent)
            self._channel_closed(peer, conn)
            return
        if silent > PING_AFTER_MS:
            conn.ctl_send("ping")  # each one makes the peer's SCTP answer
        if not conn.probing:  # from the first silent tick: a baseline early
            conn.probing = True
            conn.probe_task = self._spawn(self._probe_network(conn))  # keep a reference

    async def _probe_network(self, conn):
        try:
            seen = await conn.bytes_received()
        finally:
            conn.probing = False
        if seen and seen != conn.net_seen:
            if conn.net_seen is not None:
                conn.heard_ms = self._now()
            conn.net_seen = seen

    def _on_ctl(self, peer, conn, text):
        conn.rx += 1
        if text == "ping":
            conn.ctl_send("pong")
        elif text == BYE:  # the peer is closing: its channel is gone now
            self.stats["peers_said_bye"] += 1
            self._channel_closed(peer, conn)

    def _say_bye(self):
        """Going away: tell each peer on its control channel, so it sees the
        channel go now (on_peer(peer, False)) rather than after the
        keepalive's DEAD_AFTER_MS."""
        for peer in list(self._peers.values()):
            if peer.up:
                peer.conn.ctl_send(BYE)

    def _reconcile(self, peer, now):
        """Bring the channel to `peer` towards open: retry, time out, or ask."""
        if peer.working and now - peer.work_started_ms > 2 * CONNECT_TIMEOUT_MS:
            # A JS exception on MicroPython can end the worker without its
            # finally; never let that wedge the peer for good.
            print("wraft transport: peer " + peer.id + ": signal worker stuck, restarting")
            self._cancel(peer.task)
            peer.working = False
            peer.inbox = []
            self._drop_conn(peer)
        conn = peer.conn
        if conn is not None and conn.open:
            return
        if conn is not None and now - conn.started_ms > CONNECT_TIMEOUT_MS:
            self._drop_conn(peer)
            conn = None
        if not self.introducer_up or peer.id not in self.presence:
            return
        if self.wants is not None and not self.wants(peer.id):
            return  # only if it asks (a client of ours) or our policy changes
        if peer.missing_since_ms is None:
            peer.missing_since_ms = now
        if now < peer.next_try_ms:
            return
        if self._i_offer(peer):
            if conn is None and not peer.working:
                peer.next_try_ms = now + backoff_delay(peer.attempts, PEER_BACKOFF_MS, self._rand)
                peer.attempts += 1
                self._enqueue(peer, {"t": "connect"})
        elif conn is None and now - peer.missing_since_ms >= self.ask_after_ms:
            peer.next_try_ms = now + backoff_delay(peer.attempts, PEER_BACKOFF_MS, self._rand)
            peer.attempts += 1
            self._signal(peer, {"t": "ask"})

    def _enqueue(self, peer, item):
        peer.inbox.append(item)
        if not peer.working and not self._stopped:
            peer.working = True
            peer.work_started_ms = self._now()
            # keep a reference: CPython (Pyodide) may collect an unreferenced task
            peer.task = self._spawn(self._work(peer))

    async def _work(self, peer):
        # One task per peer at a time: SDP steps must run in order, each awaited.
        try:
            while peer.inbox and not self._stopped:
                item = peer.inbox.pop(0)
                try:
                    await self._apply(peer, item)
                except Exception as exc:  # (a cancel is no Exception: it ends the task)
                    self.stats["signal_errors"] += 1
                    print("wraft transport: peer " + peer.id + ": " + item["t"] + ": " + repr(exc))
                    self._drop_conn(peer)
        finally:
            peer.working = False

    async def _apply(self, peer, item):
        kind = item["t"]
        if kind == "connect":
            await self._start_offer(peer)
        elif kind == "ask":
            await self._handle_ask(peer)
        elif kind == "offer":
            await self._handle_offer(peer, item)
        elif kind == "answer":
            await self._handle_answer(peer, item)
        elif kind == "ice":
            await self._handle_ice(peer, item)

    async def _start_offer(self, peer):
        self._drop_conn(peer)
        self._sid_next += 1
        conn = self._open_channel(peer, self._sid_next)
        self.stats["offers"] += 1
        if self.key is not None:
            conn.offer_nonce = self._nonce()
        sdp = await conn.make_local("offer")
        conn.offer_sdp = sdp
        if peer.conn is conn:
            self._send_description(peer, conn, "offer", sdp)

    async def _handle_ask(self, peer):
        """The answering side has no channel: offer, unless an attempt is young."""
        if not self._i_offer(peer):
            self.stats["bad_signals"] += 1
            return
        conn = peer.conn
        if conn is not None and not conn.open and \
                self._now() - conn.started_ms < CONNECT_TIMEOUT_MS:
            return
        await self._start_offer(peer)

    async def _handle_offer(self, peer, item):
        sid, sdp = item.get("s"), item.get("sdp")
        if self._i_offer(peer) or type(sid) is not int or not isinstance(sdp, str) or \
                (self.key is not None and not cluster_key.valid_nonce(item.get("n"))):
            self.stats["bad_signals"] += 1
            return
        if peer.conn is not None and peer.conn.sid == sid:
            return  # duplicate
        self._drop_conn(peer)  # a new offer always replaces the old connection
        conn = self._open_channel(peer, sid)
        conn.offer_sdp, conn.offer_nonce = sdp, item.get("n")
        if self.key is not None:
            conn.answer_nonce = self._nonce()
        await conn.set_remote("offer", sdp)
        conn.remote_set = True
        answer = await conn.make_local("answer")
        conn.answer_sdp = answer
        if peer.conn is conn:
            self._send_description(peer, conn, "answer", answer)
            await self._add_pending_ice(conn)

    async def _handle_answer(self, peer, item):
        conn, sdp = peer.conn, item.get("sdp")
        if conn is None or conn.sid != item.get("s") or conn.remote_set or not isinstance(sdp, str):
            return  # stale or duplicate
        if self.key is not None and not cluster_key.valid_nonce(item.get("n")):
            self.stats["bad_signals"] += 1
            return
        conn.answer_sdp, conn.answer_nonce = sdp, item.get("n")
        await conn.set_remote("answer", sdp)
        conn.remote_set = True
        await self._add_pending_ice(conn)

    async def _handle_ice(self, peer, item):
        conn, text = peer.conn, item.get("c")
        if conn is None or conn.sid != item.get("s"):
            return
        try:
            if not is_candidate_json(text):
                raise ValueError("not a candidate")
            cand = conn.parse_ice(text)
        except ValueError:
            self.stats["bad_signals"] += 1
            return
        if cand is None:
            return  # end of candidates: ICE keeps checking what it has
        if not conn.remote_set:
            conn.pending_ice.append(cand)
            return
        await conn.add_ice(cand)

    async def _add_pending_ice(self, conn):
        pending, conn.pending_ice = conn.pending_ice, []
        for cand in pending:
            if conn.closed:
                return
            await conn.add_ice(cand)

    def _send_description(self, peer, conn, kind, sdp):
        data = {"t": kind, "s": conn.sid, "sdp": sdp}
        if self.key is not None:
            data["n"] = conn.offer_nonce if kind == "offer" else conn.answer_nonce
        self._signal(peer, data)
        conn.local_sent = True
        out, conn.outgoing_ice = conn.outgoing_ice, []
        for cand in out:
            self._signal(peer, {"t": "ice", "s": conn.sid, "c": cand})

    def _local_candidate(self, peer, conn, cand):
        """A candidate our side gathered (JSON text): trickled behind our description."""
        if conn.closed:
            return
        if conn.local_sent:
            self._signal(peer, {"t": "ice", "s": conn.sid, "c": cand})
        else:
            conn.outgoing_ice.append(cand)

    def _open_channel(self, peer, sid):
        conn = self._new_channel(peer, sid)
        peer.conn = conn
        return conn

    def _channel_opened(self, peer, conn):
        """The raft channel opened. Open cluster: the peer is up. Keyed: our
        proof goes first; the peer is up once its proof verified."""
        if conn.closed or peer.conn is not conn:
            return
        if self.key is not None:
            if not conn.proof_sent:
                conn.proof_sent = True
                conn.send(cluster_key.PROOF_PREFIX + self._proof(peer, conn, self.node))
            return
        self._channel_up(peer, conn)

    def _proof(self, peer, conn, prover):
        offerer, answerer = (self.node, peer.id) if self._i_offer(peer) else (peer.id, self.node)
        return cluster_key.channel_proof(self._key_for(peer.id), self.cluster, prover, offerer,
                                         answerer, conn.offer_sdp, conn.answer_sdp, conn.offer_nonce,
                                         conn.answer_nonce)

    def _on_unproven(self, peer, conn, text):
        """A message on a channel not yet open: in a keyed cluster, the far
        end's proof; anything else (or a wrong proof) closes the channel."""
        if conn.closed or peer.conn is not conn or self.key is None:
            self.stats["dropped_no_channel"] += 1
            return
        if not conn.proof_sent:  # its open event is still to come: ours goes first
            self._channel_opened(peer, conn)
        want = cluster_key.PROOF_PREFIX + self._proof(peer, conn, peer.id)
        if not cluster_key.same_text(text, want):
            self.stats["bad_proofs"] += 1
            self._key_trouble("node %s failed the channel proof: another cluster key, or "
                              "someone between us rewrote the SDP" % peer.id)
            self._channel_closed(peer, conn)
            return
        self.stats["proofs_verified"] += 1
        self.key_error = None
        self._channel_up(peer, conn)

    def _channel_up(self, peer, conn):
        conn.open = True
        self.ice_error = None
        conn.heard_ms = self._now()
        peer.attempts = 0
        peer.next_try_ms = 0
        peer.missing_since_ms = None
        self.stats["channels_opened"] += 1
        self._set_up(peer, True)

    def _channel_closed(self, peer, conn):
        if conn.closed or peer.conn is not conn:
            return
        self._drop_conn(peer)
        now = self._now()
        peer.missing_since_ms = now
        if not self._stopped:
            self._reconcile(peer, now)

    def _drop_conn(self, peer):
        conn = peer.conn
        if conn is None:
            return
        peer.conn = None
        conn.closed = True
        self._close_channel(conn)
        if peer.queue:
            self.stats["dropped_on_close"] += len(peer.queue)
            peer.queue = []
            peer.queued_bytes = 0
        self._set_up(peer, False)

    def _queue(self, peer, text):
        """Above the high-water mark: wait in the host for bufferedamountlow."""
        if peer.queued_bytes + len(text) > QUEUE_LIMIT_BYTES:
            self.stats["dropped_queue_full"] += 1
            return False
        peer.queue.append(text)
        peer.queued_bytes += len(text)  # characters: cheap, close enough
        self.stats["queued"] += 1
        return True

    def _set_up(self, peer, up):
        if peer.up == up:
            return
        peer.up = up
        self._callback(self.on_peer, peer.id, up)

    def _callback(self, fn, *args):
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as exc:
            self.stats["callback_errors"] += 1
            print("wraft transport: callback raised " + repr(exc))
