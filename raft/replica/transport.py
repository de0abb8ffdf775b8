"""The peer transport of a window, in CPython over aiortc.

The rules are raft/peering.py's, the same a window follows (raft/browser/
TRANSPORT.md), so a replica and browser windows connect to each other like
windows do: introducer protocol v2 (signaling/PROTOCOL.md: hello, join with
its kind and, for a member, the token kept from its last welcome; the access
secret's proof; `ice` frames; fatal 4401/4403/4409), with a cluster key the
sealed signals and channel proofs (raft/cluster_key.py), one RTCPeerConnection
per pair with the negotiated "raft" and "ctl" channels, who offers and who
asks, backoff, keepalive, limits. aiortc gathers its candidates before the
description goes out (they are in our SDP), so we send no ice signals but
take the browser's trickled ones.

API as the browser's Transport (send, peers_up, backlog, refresh,
close_peer, presence, introducer_up, error, stats, start, stop), plus
`await aclose()`, `joined_once` and `last_error` (why the introducer is not
joined, in words).
"""

import asyncio
import json
import random
import secrets
import time

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from raft.peering import (  # noqa: F401 (MessageTooLarge: this module's API)
    ASK_AFTER_MS,
    HIGH_WATER_BYTES,
    LOW_WATER_BYTES,
    TICK_MS,
    Channel,
    MessageTooLarge,
    Peering,
    check_message,
)

INTRODUCER_CONNECT_S = 5  # to open the WebSocket; then Peering's deadline to the welcome


def now_ms():
    return time.monotonic() * 1000


def gather_on(addresses):
    """Gather ICE host candidates on these addresses only (aioice's default:
    every interface address but 127.0.0.1). For peers on one machine with no
    network (CPython tests: ["127.0.0.1"]) or to pick interfaces of a
    multi-homed server. Process-wide."""
    import aioice.ice
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: list(chosen)


def ice_configuration(servers):
    """RTCConfiguration from the introducer's RTCIceServer dicts; entries
    aiortc cannot use are skipped (and said)."""
    out = []
    for s in servers or []:
        urls = s.get("urls") if isinstance(s, dict) else None
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            print("wraft transport: ignoring a malformed ICE server entry: %r" % (s,))
            continue
        out.append(RTCIceServer(urls=urls, username=s.get("username"),
                                credential=s.get("credential")))
    return RTCConfiguration(iceServers=out)


def parse_candidate(text):
    """A browser's trickled candidate (RTCIceCandidate JSON) -> aiortc's, or
    None for the end-of-candidates marker. Raises ValueError when malformed."""
    obj = json.loads(text)
    line = obj.get("candidate") if isinstance(obj, dict) else None
    if not isinstance(line, str):
        raise ValueError("no candidate line")
    if not line:
        return None
    if line.startswith("candidate:"):
        line = line[len("candidate:"):]
    try:
        cand = candidate_from_sdp(line)
    except Exception as e:  # aiortc asserts on what it cannot parse
        raise ValueError("malformed candidate line %r (%r)" % (line[:80], e))
    mid, index = obj.get("sdpMid"), obj.get("sdpMLineIndex")
    cand.sdpMid = mid if isinstance(mid, str) else None
    cand.sdpMLineIndex = index if isinstance(index, int) else None
    if cand.sdpMid is None and cand.sdpMLineIndex is None:
        cand.sdpMLineIndex = 0
    return cand


class _Conn(Channel):
    """One RTCPeerConnection attempt (session `sid`) and its two channels."""

    def __init__(self, sid, ice_servers):
        Channel.__init__(self, sid, now_ms())
        self.pc = RTCPeerConnection(ice_configuration(ice_servers))
        self.dc = self.pc.createDataChannel("raft", negotiated=True, id=0, ordered=True)
        self.dc.bufferedAmountLowThreshold = LOW_WATER_BYTES
        self.ctl = self.pc.createDataChannel("ctl", negotiated=True, id=1, ordered=True)

    async def make_local(self, kind):
        pc = self.pc
        await pc.setLocalDescription(await (pc.createOffer() if kind == "offer"
                                            else pc.createAnswer()))
        return pc.localDescription.sdp

    async def set_remote(self, kind, sdp):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))

    def parse_ice(self, text):
        return parse_candidate(text)

    async def add_ice(self, cand):
        await self.pc.addIceCandidate(cand)

    def send(self, text):
        try:
            self.dc.send(text)
            return True
        except Exception:  # closing under our feet; its close event follows
            return False

    def ctl_send(self, text):
        try:
            if self.ctl.readyState == "open":
                self.ctl.send(text)
        except Exception:
            pass

    async def bytes_received(self):
        """Bytes at the DTLS level: a peer whose page thread is busy still
        acknowledges, so it is not taken for dead."""
        try:
            report = await self.pc.getStats()
        except Exception:
            return None
        return sum(getattr(s, "bytesReceived", 0) for s in report.values()
                   if getattr(s, "type", None) == "transport")

    def close(self):
        """Detach our handlers and close; returns the closing coroutine."""
        self.closed = True
        for obj in (self.dc, self.ctl, self.pc):
            obj.remove_all_listeners()
        return self.pc.close()


class Transport(Peering):
    SECRET_HINT = ("this server needs its access secret: give the replica --secret-file "
                   "(the server's) or WRAFT_SECRET")

    def __init__(self, cluster, node, on_message, on_peer=None, on_presence=None,
                 ws_url=None, ice_servers=None, secret=None, wants=None,
                 ask_after_ms=ASK_AFTER_MS, tokens=None, key=None):
        if not isinstance(ws_url, str) or not ws_url.startswith(("ws://", "wss://")):
            raise ValueError("ws_url must start with ws:// or wss://, got %r" % (ws_url,))
        Peering.__init__(self, cluster, node, on_message, on_peer=on_peer,
                         on_presence=on_presence, ice_servers=ice_servers, secret=secret,
                         wants=wants, ask_after_ms=ask_after_ms, tokens=tokens, key=key)
        self.ws_url = ws_url
        self._ws = None
        self._outbox = None
        self._tasks = []
        self._closing = set()

    # ----- what Peering needs of a host -----------------------------------

    def _now(self):
        return now_ms()

    def _rand(self):
        return random.random()

    def _nonce(self):
        return secrets.token_hex(16)

    def _spawn(self, coro):
        return asyncio.get_event_loop().create_task(coro)

    def _cancel(self, task):
        if task is not None:
            task.cancel()

    # ----- public API ----------------------------------------------------

    def start(self):
        if not self._stopped:
            return
        self._stopped = False
        self._tasks = [self._spawn(self._introducer_loop()), self._spawn(self._ticker())]

    def stop(self):
        """Close every channel and the introducer socket; no reconnecting."""
        if self._stopped:
            return
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        for peer in list(self._peers.values()):
            self._drop_conn(peer)
            self._cancel(peer.task)

    async def aclose(self):
        """stop(), then wait (bounded) until the peer connections are closed."""
        self.stop()
        pending = [t for t in list(self._closing) + self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=3)

    def send(self, peer_id, text):
        check_message(text)
        peer = self._peers.get(peer_id)
        if peer is None or not peer.up:
            self.stats["dropped_no_channel"] += 1
            return False
        dc = peer.conn.dc
        if not peer.queue and dc.bufferedAmount < HIGH_WATER_BYTES:
            try:
                dc.send(text)
            except Exception:  # closing under our feet; its close event follows
                self.stats["dropped_no_channel"] += 1
                return False
            self.stats["sent"] += 1
            return True
        return self._queue(peer, text)

    def backlog(self, peer_id):
        peer = self._peers.get(peer_id)
        if peer is None or not peer.up:
            return 0
        return int(peer.conn.dc.bufferedAmount) + peer.queued_bytes

    def close_peer(self, peer_id):
        peer = self._peers.get(peer_id)
        if peer is not None and peer.conn is not None:
            self._channel_closed(peer, peer.conn)

    # ----- introducer ------------------------------------------------------

    async def _introducer_loop(self):
        timeout = aiohttp.ClientTimeout(total=None, connect=INTRODUCER_CONNECT_S,
                                        sock_connect=INTRODUCER_CONNECT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self._stopped and self.error is None:
                self._introducer_opening()
                code = None
                try:
                    async with http.ws_connect(self.ws_url, max_msg_size=1 << 20,
                                               autoping=True) as ws:
                        self._ws = ws
                        self._outbox = asyncio.Queue()
                        sender = self._spawn(self._ws_sender(ws))
                        self.stats["introducer_connects"] += 1
                        try:
                            async for msg in ws:  # the join answers the server's hello
                                if msg.type == aiohttp.WSMsgType.TEXT:
                                    self._on_ws_message(msg.data)
                                elif msg.type in (aiohttp.WSMsgType.ERROR,
                                                  aiohttp.WSMsgType.CLOSE):
                                    break
                        finally:
                            sender.cancel()
                        code = ws.close_code
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as e:
                    self.last_error = "cannot reach the introducer at %s: %s" % (
                        self.ws_url, str(e) or type(e).__name__)
                finally:
                    self._ws = None
                if not self._introducer_closed(code):
                    return
                await asyncio.sleep(self._introducer_retry_ms() / 1000)

    def _ws_send(self, frame):
        ws = self._ws
        if ws is None or ws.closed:
            return False
        self._outbox.put_nowait(json.dumps(frame))
        return True

    def _abandon_ws(self):
        """Close the socket; the loop sees it end and reconnects unless fatal."""
        ws = self._ws
        if ws is not None and not ws.closed:
            self._closing_task(ws.close())

    async def _ws_sender(self, ws):
        """Frames go out one at a time, in the order they were made."""
        try:
            while True:
                await ws.send_str(await self._outbox.get())
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # the socket is going; the loop reconnects

    async def _ticker(self):
        while not self._stopped:
            await asyncio.sleep(TICK_MS / 1000)
            self._tick()

    # ----- channels --------------------------------------------------------

    def _new_channel(self, peer, sid):
        conn = _Conn(sid, self.ice_servers)
        stats = self.stats
        on_message = self.on_message
        pid = peer.id

        @conn.pc.on("connectionstatechange")
        def on_state():
            if not conn.closed and conn.pc.connectionState in ("failed", "closed"):
                self._channel_closed(peer, conn)

        @conn.dc.on("message")
        def on_dc_message(data):
            conn.rx += 1
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
                print("wraft transport: on_message raised %r" % (exc,))

        conn.dc.on("open", lambda: self._channel_opened(peer, conn))
        conn.dc.on("close", lambda: self._channel_closed(peer, conn))
        conn.dc.on("bufferedamountlow", lambda: self._drain(peer))
        conn.ctl.on("message", lambda data: self._on_ctl(peer, conn, data))
        return conn

    def _close_channel(self, conn):
        self._closing_task(conn.close())

    def _closing_task(self, coro):
        task = self._spawn(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _drain(self, peer):
        conn = peer.conn
        if conn is None or not conn.open:
            return
        queue = peer.queue
        i = 0
        while i < len(queue) and conn.dc.bufferedAmount < HIGH_WATER_BYTES:
            try:
                conn.dc.send(queue[i])
            except Exception:
                break
            peer.queued_bytes -= len(queue[i])
            i += 1
        self.stats["sent"] += i
        peer.queue = queue[i:]
