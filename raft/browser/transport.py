"""Transport over WebRTC: one ordered, reliable data channel per pair of windows.

The introducer (signaling/PROTOCOL.md) only relays offers, answers and ICE
candidates; once channels are open, messages flow peer to peer even when it is
down. The node with the smaller id (string order) offers, the other answers,
so two windows never offer to each other at once (no glare). API and rules:
raft/browser/TRANSPORT.md. Runs under MicroPython and Pyodide.
"""

import asyncio
import hashlib
import hmac
import json

import js

from raft.browser.ffi import (
    Proxies,
    bytes_received,
    now_ms,
    rand,
    safe_sender,
    to_js,
    try_new,
)
from raft.browser.storage import LocalStorageKV
from raft.client import is_client_id

MAX_MESSAGE_BYTES = 65536  # keep heartbeats from waiting behind one huge message
HIGH_WATER_BYTES = 1 << 20  # queue in Python above this bufferedAmount
LOW_WATER_BYTES = 256 * 1024  # ... and drain when it falls to this
QUEUE_LIMIT_BYTES = 4 << 20  # beyond this a slow peer loses messages, not memory

TICK_MS = 500  # how often every peer's connection is checked
CONNECT_TIMEOUT_MS = 8000  # an attempt that has not opened by then is retried
ASK_AFTER_MS = 1200  # the answering side waits this long for an offer before asking
# A closed or crashed window's channel can look open for 15-30 s (until ICE
# consent fails). So a channel silent for PING_AFTER_MS gets a ping on the
# control channel every tick, and one silent for DEAD_AFTER_MS is closed and
# re-made.
# Silent means: no message, no pong, and no bytes at the network level (a
# peer busy with a backlog of messages answers late, but its SCTP acks).
PING_AFTER_MS = 1500
DEAD_AFTER_MS = 6000
PEER_BACKOFF_MS = (250, 10000)
INTRODUCER_BACKOFF_MS = (500, 15000)

PROTOCOL_VERSION = 2  # signaling/PROTOCOL.md
CLOSE_REPLACED = 4409
CLOSE_AUTH = 4401
CLOSE_ID_HELD = 4403
FATAL_CODES = ("auth_required", "auth_failed", "replaced", "id_held")
# In the origin's localStorage: the server's access secret (from a link's
# #access=...) and, per member id, the token that proves this window holds it.
ACCESS_KEY = "wraft.access"
TOKEN_KEY = "wraft.token:"


class MessageTooLarge(ValueError):
    pass


def backoff_delay(attempt, limits):
    """Exponential backoff with jitter: half fixed, half random."""
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


def take_access_secret(fragment):
    """"#access=S" (or "#x&access=S&y") -> ("S", the fragment without it);
    (None, fragment) when it carries none."""
    body = fragment[1:] if fragment.startswith("#") else fragment
    secret, keep = None, []
    for part in body.split("&"):
        if part.startswith("access="):
            secret = part[7:] or None
        elif part:
            keep.append(part)
    if secret is None:
        return None, fragment
    return secret, ("#" + "&".join(keep)) if keep else ""


def _is_candidate_json(text):
    if not isinstance(text, str):
        return False
    try:
        return isinstance(json.loads(text).get("candidate"), str)
    except Exception:
        return False


def default_ws_url():
    loc = js.location
    scheme = "wss:" if loc.protocol == "https:" else "ws:"
    return scheme + "//" + loc.host + "/ws"


def ice_error_text(code, text, url):
    """An icecandidateerror event in words for the status panel."""
    code, text, url = int(code or 0), str(text or ""), str(url or "?")
    if code == 401:
        return ("TURN server %s refused this window's credentials (401 %s): the TURN "
                "username/password is wrong or expired" % (url, text or "Unauthorized"))
    if code == 701:
        return "cannot reach STUN/TURN server %s (%s)" % (url, text or "no answer")
    return "STUN/TURN server %s: error %d %s" % (url, code, text)


class _Conn:
    """One RTCPeerConnection attempt (session `sid`) and its data channel."""

    def __init__(self, sid, ice_servers, policy="all"):
        self.sid = sid
        self.started_ms = now_ms()
        self.proxies = Proxies()
        # throws on a malformed ICE server entry: becomes a RuntimeError here
        self.pc = try_new(js.RTCPeerConnection, to_js({"iceServers": ice_servers,
                                                       "iceTransportPolicy": policy}))
        # negotiated: both ends create the same channel, no ondatachannel dance
        self.dc = self.pc.createDataChannel(
            "raft", to_js({"negotiated": True, "id": 0, "ordered": True})
        )
        self.dc.bufferedAmountLowThreshold = LOW_WATER_BYTES
        self.send = safe_sender(self.dc)  # the hot path: one FFI call, never throws
        # keepalive pings travel apart from the app's messages
        self.ctl = self.pc.createDataChannel(
            "ctl", to_js({"negotiated": True, "id": 1, "ordered": True})
        )
        self.ctl_send = safe_sender(self.ctl)
        self.rx = 0  # messages heard on either channel; compared on each tick
        self.rx_seen = 0
        self.heard_ms = self.started_ms
        self.net_seen = None  # last bytes_received() text
        self.probing = False
        self.probe_task = None
        # Characters we may still send before reading bufferedAmount again (an
        # FFI read per message costs as much as the send). Counting characters
        # for bytes can overshoot the high-water mark up to 4x with non-ASCII
        # text: still far below Chromium's 16 MiB send buffer.
        self.credit = HIGH_WATER_BYTES
        self.open = False
        self.closed = False
        self.remote_set = False
        self.local_sent = False
        self.pending_ice = []  # remote candidates before the remote description
        self.outgoing_ice = []  # local candidates before our description went out

    def close(self):
        self.closed = True
        for target, names in (
            (self.dc, ("onopen", "onclose", "onmessage", "onbufferedamountlow")),
            (self.ctl, ("onmessage",)),
            (self.pc, ("onicecandidate", "onicecandidateerror", "onconnectionstatechange")),
        ):
            for name in names:
                setattr(target, name, None)
        try:
            self.dc.close()
            self.ctl.close()
            self.pc.close()
        except Exception:
            pass
        self.proxies.release()


class _Peer:
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


class Transport:
    def __init__(
        self,
        cluster,
        node,
        on_message,
        on_peer=None,
        on_presence=None,
        ws_url=None,
        ice_servers=None,
        secret=None,
        wants=None,
        ask_after_ms=ASK_AFTER_MS,
        ice_transport_policy="all",
    ):
        if not isinstance(cluster, str) or not isinstance(node, str):
            raise TypeError("cluster and node must be str")
        self.cluster = cluster
        self.node = node
        self.on_message = on_message
        self.on_peer = on_peer
        self.on_presence = on_presence
        if ws_url is not None and not (ws_url.startswith("ws://") or ws_url.startswith("wss://")):
            raise ValueError("ws_url must start with ws:// or wss://, got " + repr(ws_url))
        self.ws_url = ws_url
        self._ice_fixed = ice_servers
        self.ice_servers = list(ice_servers) if ice_servers is not None else []
        self.ice_transport_policy = ice_transport_policy  # "relay": TURN only (diagnosis)
        self.ice_error = None  # the last STUN/TURN failure, in words, until a channel opens
        self.secret = secret
        self.kind = "client" if is_client_id(node) else "member"
        self._store = None
        self._token = None
        # Connection policy: wants(peer) says whether we open (offer or ask
        # for) a channel to that present peer on our own; None = every peer.
        # An "ask" from a peer is always answered, wanted or not (a member
        # serves the client windows that ask it; TRANSPORT.md).
        self.wants = wants
        self.ask_after_ms = ask_after_ms
        self.presence = []
        self.introducer_up = False
        self.error = None
        self.stats = {
            "sent": 0,
            "received": 0,
            "queued": 0,
            "dropped_no_channel": 0,
            "dropped_queue_full": 0,
            "dropped_on_close": 0,
            "dropped_binary": 0,
            "callback_errors": 0,
            "bad_signals": 0,
            "signal_errors": 0,
            "offers": 0,
            "channels_opened": 0,
            "silent_peers_closed": 0,
            "ice_errors": 0,
            "introducer_attempts": 0,
            "introducer_connects": 0,
        }
        self._peers = {}
        self._ws = None
        self._ws_proxies = None
        self._ws_attempts = 0
        self._stopped = True
        self._sid_next = int(rand() * (1 << 30))
        self._timers = Proxies()
        self._tick_id = None
        self._retry_id = None

    # ----- public API ----------------------------------------------------

    def start(self):
        if not self._stopped:
            return
        self._stopped = False
        if self.secret is None:
            self.secret = self._page_access_secret()
        self._tick_proxy = self._timers.make(self._tick)
        self._tick_id = js.setInterval(self._tick_proxy, TICK_MS)
        self._reconnect_proxy = self._timers.make(self._connect_introducer)
        self._connect_introducer()

    def stop(self):
        self._stopped = True
        if self._tick_id is not None:
            js.clearInterval(self._tick_id)
        if self._retry_id is not None:
            js.clearTimeout(self._retry_id)
        self._close_ws()
        for peer in list(self._peers.values()):
            self._drop_conn(peer)
        self._timers.release()

    def send(self, peer_id, text):
        """Send or queue `text`; False when it had to be dropped (see TRANSPORT.md)."""
        if not isinstance(text, str):
            raise TypeError("send() takes str, got " + type(text).__name__)
        n = len(text)
        if n > MAX_MESSAGE_BYTES // 4:  # only then can the UTF-8 form be too big
            n = len(text.encode())
            if n > MAX_MESSAGE_BYTES:
                raise MessageTooLarge(
                    "message of %d bytes is over the %d-byte limit" % (n, MAX_MESSAGE_BYTES)
                )
        peer = self._peers.get(peer_id)
        if peer is None or not peer.up:
            self.stats["dropped_no_channel"] += 1
            return False
        conn = peer.conn
        if not peer.queue:
            conn.credit -= len(text)
            if conn.credit < 0:
                conn.credit = HIGH_WATER_BYTES - conn.dc.bufferedAmount
            if conn.credit >= 0:
                if not conn.send(text):  # closing under our feet; its close event follows
                    self.stats["dropped_no_channel"] += 1
                    return False
                self.stats["sent"] += 1
                return True
        # above the high-water mark: wait in Python for bufferedamountlow
        if peer.queued_bytes + len(text) > QUEUE_LIMIT_BYTES:
            self.stats["dropped_queue_full"] += 1
            return False
        peer.queue.append(text)
        peer.queued_bytes += len(text)  # characters: cheap, close enough
        self.stats["queued"] += 1
        return True

    def peers_up(self):
        return sorted(p.id for p in self._peers.values() if p.up)

    def backlog(self, peer_id):
        """Bytes waiting to go to `peer_id`: in the channel (bufferedAmount)
        plus our queue; 0 when there is no open channel."""
        peer = self._peers.get(peer_id)
        if peer is None or not peer.up:
            return 0
        return int(peer.conn.dc.bufferedAmount) + peer.queued_bytes

    def refresh(self):
        """The policy (wants) changed: act on it now, not at the next tick."""
        now = now_ms()
        for peer in list(self._peers.values()):
            if not peer.up and (self.wants is None or self.wants(peer.id)):
                peer.attempts = 0
                peer.next_try_ms = 0
            self._reconcile(peer, now)

    def close_peer(self, peer_id):
        """Close the channel to `peer_id`; both ends then re-establish it."""
        peer = self._peers.get(peer_id)
        if peer is not None and peer.conn is not None:
            peer.conn.dc.close()

    # ----- introducer (WebSocket) ---------------------------------------

    def _connect_introducer(self, *_):
        self._retry_id = None
        if self._stopped or self.error is not None:
            return
        self._close_ws()
        self.stats["introducer_attempts"] += 1
        proxies = Proxies()
        try:
            ws = try_new(js.WebSocket, self.ws_url or default_ws_url())
        except RuntimeError as exc:  # e.g. a malformed ws_url: say so, keep retrying
            print("wraft transport: cannot open introducer socket: " + repr(exc))
            proxies.release()
            self._retry_introducer()
            return
        ws.onopen = proxies.make(self._on_ws_open)
        ws.onmessage = proxies.make(self._on_ws_message)
        ws.onclose = proxies.make(self._on_ws_close)
        self._ws, self._ws_proxies = ws, proxies

    def _close_ws(self):
        ws = self._ws
        if ws is None:
            return
        self._ws = None
        ws.onopen = ws.onmessage = ws.onclose = None
        try:
            ws.close()
        except Exception:
            pass
        self._ws_proxies.release()
        self.introducer_up = False
        self.presence = []

    def _ws_send(self, frame):
        ws = self._ws
        if ws is not None and ws.readyState == 1:
            ws.send(json.dumps(frame))
            return True
        return False

    def _on_ws_open(self, _event):
        self.stats["introducer_connects"] += 1  # the join answers the server's hello

    def _kv(self):
        if self._store is None:
            self._store = LocalStorageKV()
        return self._store

    def _page_access_secret(self):
        """The access secret of a link's #access=..., kept in the origin's
        storage and taken out of the address bar (so it is not bookmarked or
        shared with the rest of the fragment); else the one kept earlier."""
        secret, rest = take_access_secret(str(js.location.hash))
        if secret is None:
            return self._kv().get(ACCESS_KEY)
        js.history.replaceState(js.history.state, "", js.location.pathname + js.location.search + rest)
        try:
            self._kv().set(ACCESS_KEY, secret)
        except Exception as exc:  # full storage: this page load still has it
            print("wraft transport: cannot keep the access secret: " + repr(exc))
        return secret

    def _send_join(self, hello):
        frame = {"type": "join", "v": PROTOCOL_VERSION, "cluster": self.cluster,
                 "node": self.node, "kind": self.kind}
        token = self._token
        if token is None and self.kind == "member":
            token = self._kv().get(TOKEN_KEY + self.cluster + ":" + self.node)
        if token:
            frame["token"] = token
        if hello.get("access") == "secret":
            nonce = hello.get("nonce")
            if not self.secret:
                self._fatal("auth_required", "this server needs its access secret: open a "
                            "link it printed (#access=...) once in this window's origin")
                self._close_ws()
                return
            if not isinstance(nonce, str):
                self.stats["bad_signals"] += 1
                return
            frame["proof"] = join_proof(self.secret, nonce, self.cluster, self.node, self.kind)
        self._ws_send(frame)

    def _keep_token(self, token):
        """Keep the welcome's token: a reload presents it to take the id back."""
        if not isinstance(token, str) or token == self._token:
            return
        self._token = token
        if self.kind != "member":
            return  # a client id is new on every page load
        try:
            self._kv().set(TOKEN_KEY + self.cluster + ":" + self.node, token)
        except Exception as exc:  # full storage: a reload then waits for the id
            print("wraft transport: cannot keep the id token: " + repr(exc))

    def _on_ws_close(self, event):
        code = event.code
        self._ws_proxies.release()
        self._ws = None
        self.introducer_up = False
        self.presence = []
        if self._stopped:
            return
        if code == CLOSE_REPLACED:
            self._fatal("replaced", "a newer window of this origin (a reload, another tab) "
                        "took node " + self.node)
            return
        if code == CLOSE_AUTH or code == CLOSE_ID_HELD:
            if self.error is None:
                self._fatal("auth_failed" if code == CLOSE_AUTH else "id_held",
                            "introducer refused the join (code %d)" % code)
            return
        self._retry_introducer()

    def _retry_introducer(self):
        delay = backoff_delay(self._ws_attempts, INTRODUCER_BACKOFF_MS)
        self._ws_attempts += 1
        self._retry_id = js.setTimeout(self._reconnect_proxy, int(delay))

    def _fatal(self, code, message):
        self.error = code
        print("wraft transport: introducer: " + code + ": " + message)

    def _on_ws_message(self, event):
        try:
            frame = json.loads(event.data)
            kind = frame["type"]
        except Exception:
            self.stats["bad_signals"] += 1
            return
        if kind == "signal":
            self._on_signal(frame.get("from"), frame.get("data"))
        elif kind == "presence":
            self._on_presence(frame.get("nodes"))
        elif kind == "hello":
            self._send_join(frame)
        elif kind == "welcome" or kind == "ice":  # ice: fresh short-lived TURN credentials
            if kind == "welcome":
                self._ws_attempts = 0
                self.introducer_up = True
                self._keep_token(frame.get("token"))
            if self._ice_fixed is None and isinstance(frame.get("ice_servers"), list):
                self.ice_servers = frame["ice_servers"]
        elif kind == "error":
            code = frame.get("code")
            if code in FATAL_CODES:
                self._fatal(code, str(frame.get("message")))
            elif code != "unknown_target":  # a peer left between presence and signal
                print("wraft transport: introducer error: " + str(frame.get("message")))

    def _on_presence(self, nodes):
        if not isinstance(nodes, list):
            self.stats["bad_signals"] += 1
            return
        nodes = sorted(n for n in nodes if isinstance(n, str))
        now = now_ms()
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
        if self.on_presence is not None:
            try:
                self.on_presence(nodes)
            except Exception as exc:
                self.stats["callback_errors"] += 1
                print("wraft transport: on_presence raised " + repr(exc))

    def _on_signal(self, sender, data):
        if (
            not isinstance(sender, str)
            or sender == self.node
            or not isinstance(data, dict)
            or data.get("t") not in ("offer", "answer", "ice", "ask")
        ):
            self.stats["bad_signals"] += 1
            return
        self._enqueue(self._peer(sender), data)

    def _signal(self, peer, data):
        self._ws_send({"type": "signal", "to": peer.id, "data": data})

    # ----- per-peer connection state -------------------------------------

    def _peer(self, pid):
        peer = self._peers.get(pid)
        if peer is None:
            peer = self._peers[pid] = _Peer(pid)
        return peer

    def _i_offer(self, peer):
        return self.node < peer.id

    def _tick(self, *_):
        now = now_ms()
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
        else:
            if silent > PING_AFTER_MS:
                conn.ctl_send("ping")  # each one makes the peer's SCTP answer
            if not conn.probing:  # from the first silent tick: a baseline early
                conn.probing = True
                conn.probe_task = asyncio.create_task(self._probe_network(conn))

    async def _probe_network(self, conn):
        try:
            seen = await bytes_received(conn.pc)
        finally:
            conn.probing = False
        if seen and seen != conn.net_seen:
            if conn.net_seen is not None:
                conn.heard_ms = now_ms()
            conn.net_seen = seen

    def _reconcile(self, peer, now):
        """Bring the channel to `peer` towards open: retry, time out, or ask."""
        if peer.working and now - peer.work_started_ms > 2 * CONNECT_TIMEOUT_MS:
            # A JS exception on MicroPython can end the worker without its
            # finally; never let that wedge the peer for good.
            print("wraft transport: peer " + peer.id + ": signal worker stuck, restarting")
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
                peer.next_try_ms = now + backoff_delay(peer.attempts, PEER_BACKOFF_MS)
                peer.attempts += 1
                self._enqueue(peer, {"t": "connect"})
        elif conn is None and now - peer.missing_since_ms >= self.ask_after_ms:
            peer.next_try_ms = now + backoff_delay(peer.attempts, PEER_BACKOFF_MS)
            peer.attempts += 1
            self._signal(peer, {"t": "ask"})

    def _enqueue(self, peer, item):
        peer.inbox.append(item)
        if not peer.working:
            peer.working = True
            peer.work_started_ms = now_ms()
            # keep a reference: CPython (Pyodide) may collect an unreferenced task
            peer.task = asyncio.create_task(self._work(peer))

    async def _work(self, peer):
        # One task per peer at a time: SDP steps must run in order, each awaited.
        try:
            while peer.inbox and not self._stopped:
                item = peer.inbox.pop(0)
                try:
                    await self._apply(peer, item)
                except Exception as exc:
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
        conn = self._new_conn(peer, self._sid_next)
        self.stats["offers"] += 1
        offer = await conn.pc.createOffer()
        await conn.pc.setLocalDescription(offer)
        if peer.conn is conn:
            self._send_description(peer, conn, "offer")

    async def _handle_ask(self, peer):
        """The answering side has no channel: offer, unless an attempt is young."""
        if not self._i_offer(peer):
            self.stats["bad_signals"] += 1
            return
        conn = peer.conn
        if conn is not None and not conn.open and now_ms() - conn.started_ms < CONNECT_TIMEOUT_MS:
            return
        await self._start_offer(peer)

    async def _handle_offer(self, peer, item):
        sid, sdp = item.get("s"), item.get("sdp")
        if self._i_offer(peer) or not isinstance(sid, int) or not isinstance(sdp, str):
            self.stats["bad_signals"] += 1
            return
        if peer.conn is not None and peer.conn.sid == sid:
            return  # duplicate
        self._drop_conn(peer)  # a new offer always replaces the old connection
        conn = self._new_conn(peer, sid)
        await conn.pc.setRemoteDescription(to_js({"type": "offer", "sdp": sdp}))
        conn.remote_set = True
        answer = await conn.pc.createAnswer()
        await conn.pc.setLocalDescription(answer)
        if peer.conn is conn:
            self._send_description(peer, conn, "answer")
            await self._add_pending_ice(conn)

    async def _handle_answer(self, peer, item):
        conn, sdp = peer.conn, item.get("sdp")
        if conn is None or conn.sid != item.get("s") or conn.remote_set or not isinstance(sdp, str):
            return  # stale or duplicate
        await conn.pc.setRemoteDescription(to_js({"type": "answer", "sdp": sdp}))
        conn.remote_set = True
        await self._add_pending_ice(conn)

    async def _handle_ice(self, peer, item):
        conn, cand = peer.conn, item.get("c")
        if conn is None or conn.sid != item.get("s"):
            return
        if not _is_candidate_json(cand):  # JSON.parse would throw past Python
            self.stats["bad_signals"] += 1
            return
        if not conn.remote_set:
            conn.pending_ice.append(cand)
            return
        await conn.pc.addIceCandidate(js.JSON.parse(cand))

    async def _add_pending_ice(self, conn):
        pending, conn.pending_ice = conn.pending_ice, []
        for cand in pending:
            if conn.closed:
                return
            await conn.pc.addIceCandidate(js.JSON.parse(cand))

    def _send_description(self, peer, conn, kind):
        self._signal(peer, {"t": kind, "s": conn.sid, "sdp": conn.pc.localDescription.sdp})
        conn.local_sent = True
        out, conn.outgoing_ice = conn.outgoing_ice, []
        for cand in out:
            self._signal(peer, {"t": "ice", "s": conn.sid, "c": cand})

    def _new_conn(self, peer, sid):
        conn = _Conn(sid, self.ice_servers, self.ice_transport_policy)
        peer.conn = conn
        make = conn.proxies.make

        def on_ice(event):
            cand = js.JSON.stringify(event.candidate)
            if conn.closed or cand == "null" or not isinstance(cand, str):
                return  # end of gathering
            if conn.local_sent:
                self._signal(peer, {"t": "ice", "s": conn.sid, "c": cand})
            else:  # keep candidates behind our offer/answer
                conn.outgoing_ice.append(cand)

        def on_ice_error(event):
            # A TURN server refusing our credentials (or one we cannot reach)
            # would otherwise look like peers that never answer.
            self.stats["ice_errors"] += 1
            if not conn.closed:
                self.ice_error = ice_error_text(event.errorCode, event.errorText, event.url)

        def on_state(_event):
            if not conn.closed and conn.pc.connectionState in ("failed", "closed"):
                self._channel_closed(peer, conn)

        def on_open(_event):
            if conn.closed or peer.conn is not conn:
                return
            conn.open = True
            self.ice_error = None
            conn.heard_ms = now_ms()
            peer.attempts = 0
            peer.next_try_ms = 0
            peer.missing_since_ms = None
            self.stats["channels_opened"] += 1
            self._set_up(peer, True)

        def on_close(_event):
            self._channel_closed(peer, conn)

        on_message = self.on_message
        stats = self.stats
        pid = peer.id

        def on_dc_message(event):
            conn.rx += 1
            data = event.data
            if not isinstance(data, str):
                stats["dropped_binary"] += 1
                return
            stats["received"] += 1
            try:
                on_message(pid, data)
            except Exception as exc:
                stats["callback_errors"] += 1
                print("wraft transport: on_message raised " + repr(exc))

        def on_low(_event):
            self._drain(peer)

        def on_ctl(event):
            conn.rx += 1
            if event.data == "ping":
                conn.ctl_send("pong")

        conn.pc.onicecandidate = conn.proxies.handler(on_ice)
        conn.pc.onconnectionstatechange = conn.proxies.handler(on_state)
        conn.pc.onicecandidateerror = conn.proxies.handler(on_ice_error)
        conn.dc.onopen = make(on_open)
        conn.dc.onclose = make(on_close)
        conn.dc.onmessage = make(on_dc_message)
        conn.dc.onbufferedamountlow = make(on_low)
        conn.ctl.onmessage = make(on_ctl)
        return conn

    def _channel_closed(self, peer, conn):
        if conn.closed or peer.conn is not conn:
            return
        self._drop_conn(peer)
        now = now_ms()
        peer.missing_since_ms = now
        if not self._stopped:
            self._reconcile(peer, now)

    def _drop_conn(self, peer):
        conn = peer.conn
        if conn is None:
            return
        peer.conn = None
        conn.close()
        if peer.queue:
            self.stats["dropped_on_close"] += len(peer.queue)
            peer.queue = []
            peer.queued_bytes = 0
        self._set_up(peer, False)

    def _set_up(self, peer, up):
        if peer.up == up:
            return
        peer.up = up
        if self.on_peer is not None:
            try:
                self.on_peer(peer.id, up)
            except Exception as exc:
                self.stats["callback_errors"] += 1
                print("wraft transport: on_peer raised " + repr(exc))

    def _drain(self, peer):
        conn = peer.conn
        if conn is None or not conn.open:
            return
        queue = peer.queue
        room = HIGH_WATER_BYTES - conn.dc.bufferedAmount
        i = 0
        while i < len(queue) and room >= 0:
            if not conn.send(queue[i]):
                break  # channel closing; its close event drops the rest
            room -= len(queue[i])
            peer.queued_bytes -= len(queue[i])
            i += 1
        self.stats["sent"] += i
        peer.queue = queue[i:]
        conn.credit = room if not peer.queue else -1
