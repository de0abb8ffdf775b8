"""Transport over WebRTC: one ordered, reliable data channel per pair of windows.

The introducer (signaling/PROTOCOL.md) only relays offers, answers and ICE
candidates; once channels are open, messages flow peer to peer even when it is
down. The rules (who offers, asks, retries, keepalive, the v2 join) are
raft/peering.py's, shared with the CPython replica; this module is their
browser side: RTCPeerConnection, the WebSocket, timers and localStorage.
API: raft/browser/TRANSPORT.md. Runs under MicroPython and Pyodide.
"""

import asyncio
import json

import js

from raft.browser.ffi import (
    Proxies,
    bytes_received,
    now_ms,
    rand,
    random_hex,
    safe_sender,
    to_js,
    try_new,
)
from raft.browser.storage import LocalStorageKV
from raft.client import is_client_id
from raft.cluster_key import check_key
from raft.peering import (  # noqa: F401 (MessageTooLarge, MAX_MESSAGE_BYTES: this module's API)
    ASK_AFTER_MS,
    HIGH_WATER_BYTES,
    LOW_WATER_BYTES,
    MAX_MESSAGE_BYTES,
    TICK_MS,
    Channel,
    MessageTooLarge,
    Peering,
    check_message,
)

# In the origin's localStorage: the server's access secret (from a link's
# #access=...) and each cluster's key (from #key=..., per cluster name); the
# member's id token is kept there too (raft/peering.py).
ACCESS_KEY = "wraft.access"
CLUSTER_KEY = "wraft.key:"  # + cluster
# A client window keeps its key apart: its link (often the client key only)
# may open on a member window's origin, whose cluster key it must not replace.
CLIENT_KEY = "wraft.clientkey:"  # + cluster


def take_fragment_param(fragment, name):
    """"#name=V" (or "#x&name=V&y") -> ("V", the fragment without it);
    (None, fragment) when it carries none."""
    body = fragment[1:] if fragment.startswith("#") else fragment
    value, keep = None, []
    for part in body.split("&"):
        if part.startswith(name + "="):
            value = part[len(name) + 1:] or None
        elif part:
            keep.append(part)
    if value is None:
        return None, fragment
    return value, ("#" + "&".join(keep)) if keep else ""


def take_access_secret(fragment):
    return take_fragment_param(fragment, "access")


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


class _Conn(Channel):
    """One RTCPeerConnection attempt (session `sid`) and its data channels."""

    def __init__(self, sid, ice_servers, policy="all"):
        Channel.__init__(self, sid, now_ms())
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
        # Characters we may still send before reading bufferedAmount again (an
        # FFI read per message costs as much as the send). Counting characters
        # for bytes can overshoot the high-water mark up to 4x with non-ASCII
        # text: still far below Chromium's 16 MiB send buffer.
        self.credit = HIGH_WATER_BYTES

    async def make_local(self, kind):
        pc = self.pc
        desc = await (pc.createOffer() if kind == "offer" else pc.createAnswer())
        await pc.setLocalDescription(desc)
        return pc.localDescription.sdp

    async def set_remote(self, kind, sdp):
        await self.pc.setRemoteDescription(to_js({"type": kind, "sdp": sdp}))

    def parse_ice(self, text):
        return text  # checked JSON (JSON.parse would throw past Python); the browser parses it

    async def add_ice(self, cand):
        await self.pc.addIceCandidate(js.JSON.parse(cand))

    async def bytes_received(self):
        return await bytes_received(self.pc)

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


class Transport(Peering):
    REPLACED_WHY = "a newer window of this origin (a reload, another tab) took node "
    SECRET_HINT = ("this server needs its access secret: open a link it printed "
                   "(#access=...) once in this window's origin")

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
        key=None,
    ):
        if ws_url is not None and not (ws_url.startswith("ws://") or ws_url.startswith("wss://")):
            raise ValueError("ws_url must start with ws:// or wss://, got " + repr(ws_url))
        self._store = LocalStorageKV()
        if key is None:
            key = self._page_cluster_key(cluster, is_client_id(node))
        Peering.__init__(self, cluster, node, on_message, on_peer=on_peer,
                         on_presence=on_presence, ice_servers=ice_servers, secret=secret,
                         wants=wants, ask_after_ms=ask_after_ms, tokens=self._store, key=key)
        self.ws_url = ws_url
        self.ice_transport_policy = ice_transport_policy  # "relay": TURN only (diagnosis)
        self._ws = None
        self._ws_proxies = None
        self._timers = Proxies()
        self._tick_id = None
        self._retry_id = None

    # ----- what Peering needs of a host -----------------------------------

    def _now(self):
        return now_ms()

    def _rand(self):
        return rand()

    def _nonce(self):
        return random_hex(16)

    def _spawn(self, coro):
        return asyncio.create_task(coro)

    # ----- public API ----------------------------------------------------

    def start(self):
        if not self._stopped:
            return
        self._stopped = False
        if self.secret is None:
            self.secret = self._page_access_secret()
        self._tick_proxy = self._timers.make(lambda *_: self._tick())
        self._tick_id = js.setInterval(self._tick_proxy, TICK_MS)
        # A closed tab's channel can look open to its peers for 15-30 s:
        # say goodbye on every channel when the window goes away.
        self._bye_proxy = self._timers.make(self._on_pagehide)
        js.window.addEventListener("pagehide", self._bye_proxy)
        self._reconnect_proxy = self._timers.make(self._connect_introducer)
        self._connect_introducer()

    def stop(self):
        self._stopped = True
        if self._tick_id is not None:
            js.clearInterval(self._tick_id)
            js.window.removeEventListener("pagehide", self._bye_proxy)
        if self._retry_id is not None:
            js.clearTimeout(self._retry_id)
        self._close_ws()
        for peer in list(self._peers.values()):
            self._drop_conn(peer)
        self._timers.release()

    def send(self, peer_id, text):
        """Send or queue `text`; False when it had to be dropped (see TRANSPORT.md)."""
        if type(text) is not str or len(text) > MAX_MESSAGE_BYTES // 4:
            check_message(text)
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
        return self._queue(peer, text)

    def backlog(self, peer_id):
        """Bytes waiting to go to `peer_id`: in the channel (bufferedAmount)
        plus our queue; 0 when there is no open channel."""
        peer = self._peers.get(peer_id)
        if peer is None or not peer.up:
            return 0
        return int(peer.conn.dc.bufferedAmount) + peer.queued_bytes

    def close_peer(self, peer_id):
        """Close the channel to `peer_id`; both ends then re-establish it."""
        peer = self._peers.get(peer_id)
        if peer is not None and peer.conn is not None:
            peer.conn.dc.close()

    def _on_pagehide(self, _event):
        """The window is closing: say bye to each peer, then close everything."""
        self._say_bye()
        self.stop()

    # ----- introducer (WebSocket) ---------------------------------------

    def _connect_introducer(self, *_):
        self._retry_id = None
        if self._stopped or self.error is not None:
            return
        self._close_ws()
        self._introducer_opening()
        proxies = Proxies()
        try:
            ws = try_new(js.WebSocket, self.ws_url or default_ws_url())
        except RuntimeError as exc:  # e.g. a malformed ws_url: say so, keep retrying
            print("wraft transport: cannot open introducer socket: " + repr(exc))
            proxies.release()
            if self._introducer_closed(None):
                self._retry_introducer()
            return
        ws.onopen = proxies.make(self._on_ws_open)
        ws.onmessage = proxies.make(self._on_ws_event)
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

    def _abandon_ws(self):
        self._close_ws()
        if self._introducer_closed(None):
            self._retry_introducer()

    def _ws_send(self, frame):
        ws = self._ws
        if ws is not None and ws.readyState == 1:
            ws.send(json.dumps(frame))
            return True
        return False

    def _on_ws_open(self, _event):
        self.stats["introducer_connects"] += 1  # the join answers the server's hello

    def _on_ws_event(self, event):
        self._on_ws_message(event.data)

    def _page_access_secret(self):
        """The access secret of a link's #access=..., kept in the origin's
        storage and taken out of the address bar (so it is not bookmarked or
        shared with the rest of the fragment); else the one kept earlier."""
        return self._from_fragment("access", ACCESS_KEY)

    def _page_cluster_key(self, cluster, client):
        """This cluster's key: a link's #key=..., kept in the origin's storage
        (per cluster name) and taken out of the address bar; else the one kept
        earlier; None: an open cluster. A malformed key is a ValueError."""
        return self._from_fragment("key", (CLIENT_KEY if client else CLUSTER_KEY) + cluster,
                                   check_key)

    def _from_fragment(self, name, store_key, check=None):
        value, rest = take_fragment_param(str(js.location.hash), name)
        if value is None:
            return self._store.get(store_key)
        if check is not None:
            check(value)  # a malformed one is refused before it is kept
        js.history.replaceState(js.history.state, "", js.location.pathname + js.location.search + rest)
        try:
            self._store.set(store_key, value)
        except Exception as exc:  # full storage: this page load still has it
            print("wraft transport: cannot keep the %s from the link: %r" % (name, exc))
        return value

    def _on_ws_close(self, event):
        self._ws_proxies.release()
        self._ws = None
        if self._introducer_closed(event.code):
            self._retry_introducer()

    def _retry_introducer(self):
        self._retry_id = js.setTimeout(self._reconnect_proxy, int(self._introducer_retry_ms()))

    # ----- channels --------------------------------------------------------

    def _new_channel(self, peer, sid):
        conn = _Conn(sid, self.ice_servers, self.ice_transport_policy)
        make = conn.proxies.make

        def on_ice(event):
            cand = js.JSON.stringify(event.candidate)
            if cand != "null" and isinstance(cand, str):  # null: end of gathering
                self._local_candidate(peer, conn, cand)

        def on_ice_error(event):
            # A TURN server refusing our credentials (or one we cannot reach)
            # would otherwise look like peers that never answer.
            self.stats["ice_errors"] += 1
            if not conn.closed:
                self.ice_error = ice_error_text(event.errorCode, event.errorText, event.url)

        def on_state(_event):
            if not conn.closed and conn.pc.connectionState in ("failed", "closed"):
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
            if not conn.open:  # keyed: the far end's channel proof comes first
                self._on_unproven(peer, conn, data)
                return
            stats["received"] += 1
            try:
                on_message(pid, data)
            except Exception as exc:
                stats["callback_errors"] += 1
                print("wraft transport: on_message raised " + repr(exc))

        conn.pc.onicecandidate = conn.proxies.handler(on_ice)
        conn.pc.onconnectionstatechange = conn.proxies.handler(on_state)
        conn.pc.onicecandidateerror = conn.proxies.handler(on_ice_error)
        conn.dc.onopen = make(lambda _e: self._channel_opened(peer, conn))
        conn.dc.onclose = make(lambda _e: self._channel_closed(peer, conn))
        conn.dc.onmessage = make(on_dc_message)
        conn.dc.onbufferedamountlow = make(lambda _e: self._drain(peer))
        conn.ctl.onmessage = make(lambda event: self._on_ctl(peer, conn, event.data))
        return conn

    def _close_channel(self, conn):
        conn.close()

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
