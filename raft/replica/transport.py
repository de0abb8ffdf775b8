"""The peer transport of raft/browser/transport.py, in CPython over aiortc.

Same wire behaviour as a window, so a replica and browser windows connect to
each other like windows do (raft/browser/TRANSPORT.md):
- introducer: signaling/PROTOCOL.md v1 over an aiohttp WebSocket (join,
  optionally signed with --secret; presence; relayed signals), reconnecting
  with backoff; 4409 (replaced) and 4401 (auth) are fatal;
- per pair one RTCPeerConnection with two negotiated, ordered channels:
  "raft" (id 0) for messages and "ctl" (id 1) for keepalive pings;
- the smaller id (string order) offers; the other answers and, without a
  channel after `ask_after_ms`, asks for an offer; an offer with a new
  session id replaces the old connection; failed or closed channels are
  re-made with backoff; `wants` limits whom we dial (asks are always
  answered);
- signals {"t": "offer"|"answer", "s": SID, "sdp": S}, {"t": "ice", "s":
  SID, "c": CANDIDATE_JSON}, {"t": "ask"}. aiortc gathers its candidates
  before the description goes out (they are in our SDP), so we send no ice
  signals but take the browser's trickled ones;
- text messages of at most 64 KiB, queued above 1 MiB of bufferedAmount,
  dropped (False) without a channel or above a 4 MiB queue;
- a channel silent for 1.5 s is pinged, one silent for 6 s (no message, no
  pong, no bytes at the DTLS level) is closed and re-made.

API as the browser's Transport (send, peers_up, backlog, refresh,
close_peer, presence, introducer_up, error, stats, start, stop), plus
`await aclose()` and `last_error` (why the introducer could not be reached).
"""

import asyncio
import hmac
import json
import random
import time

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

MAX_MESSAGE_BYTES = 65536
HIGH_WATER_BYTES = 1 << 20
LOW_WATER_BYTES = 256 * 1024
QUEUE_LIMIT_BYTES = 4 << 20

TICK_MS = 500
CONNECT_TIMEOUT_MS = 8000
ASK_AFTER_MS = 1200
PING_AFTER_MS = 1500
DEAD_AFTER_MS = 6000
PEER_BACKOFF_MS = (250, 10000)
INTRODUCER_BACKOFF_MS = (500, 15000)
INTRODUCER_CONNECT_S = 5  # one attempt to open the WebSocket

CLOSE_REPLACED = 4409
CLOSE_AUTH = 4401


class MessageTooLarge(ValueError):
    pass


def now_ms():
    return time.monotonic() * 1000


def backoff_delay(attempt, limits):
    """Exponential backoff with jitter: half fixed, half random."""
    base, cap = limits
    d = min(cap, base * (1 << min(attempt, 16)))
    return d / 2 + random.random() * d / 2


def join_auth(secret, cluster, node, ts):
    """The join frame's auth field (signaling/PROTOCOL.md, Authentication)."""
    msg = "%s\n%s\n%d" % (cluster, node, ts)
    return {"ts": ts, "mac": hmac.new(secret.encode(), msg.encode(), "sha256").hexdigest()}


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


class _Conn:
    """One RTCPeerConnection attempt (session `sid`) and its two channels."""

    def __init__(self, sid, ice_servers):
        self.sid = sid
        self.started_ms = now_ms()
        self.pc = RTCPeerConnection(ice_configuration(ice_servers))
        self.dc = self.pc.createDataChannel("raft", negotiated=True, id=0, ordered=True)
        self.dc.bufferedAmountLowThreshold = LOW_WATER_BYTES
        self.ctl = self.pc.createDataChannel("ctl", negotiated=True, id=1, ordered=True)
        self.rx = 0
        self.rx_seen = 0
        self.heard_ms = self.started_ms
        self.net_seen = None
        self.probing = False
        self.open = False
        self.closed = False
        self.remote_set = False
        self.pending_ice = []

    def close(self):
        """Detach our handlers and close; returns the closing coroutine."""
        self.closed = True
        for obj in (self.dc, self.ctl, self.pc):
            obj.remove_all_listeners()
        return self.pc.close()


class _Peer:
    def __init__(self, pid):
        self.id = pid
        self.conn = None
        self.up = False
        self.inbox = []
        self.working = False
        self.work_started_ms = 0
        self.task = None
        self.queue = []
        self.queued_bytes = 0
        self.attempts = 0
        self.next_try_ms = 0
        self.missing_since_ms = None


class Transport:
    def __init__(self, cluster, node, on_message, on_peer=None, on_presence=None,
                 ws_url=None, ice_servers=None, secret=None, wants=None,
                 ask_after_ms=ASK_AFTER_MS):
        if not isinstance(cluster, str) or not isinstance(node, str):
            raise TypeError("cluster and node must be str")
        if not isinstance(ws_url, str) or not ws_url.startswith(("ws://", "wss://")):
            raise ValueError("ws_url must start with ws:// or wss://, got %r" % (ws_url,))
        self.cluster = cluster
        self.node = node
        self.on_message = on_message
        self.on_peer = on_peer
        self.on_presence = on_presence
        self.ws_url = ws_url
        self._ice_fixed = ice_servers
        self.ice_servers = list(ice_servers) if ice_servers is not None else []
        self.secret = secret
        self.wants = wants
        self.ask_after_ms = ask_after_ms
        self.presence = []
        self.introducer_up = False
        self.joined_once = False
        self.error = None
        self.last_error = None  # why the last introducer attempt failed (words)
        self.stats = dict.fromkeys((
            "sent", "received", "queued", "dropped_no_channel", "dropped_queue_full",
            "dropped_on_close", "dropped_binary", "callback_errors", "bad_signals",
            "signal_errors", "offers", "channels_opened", "silent_peers_closed",
            "introducer_attempts", "introducer_connects"), 0)
        self._peers = {}
        self._ws = None
        self._outbox = None
        self._ws_attempts = 0
        self._stopped = True
        self._sid_next = random.randrange(1 << 30)
        self._tasks = []
        self._closing = set()

    # ----- public API ----------------------------------------------------

    def start(self):
        if not self._stopped:
            return
        self._stopped = False
        loop = asyncio.get_event_loop()
        self._tasks = [loop.create_task(self._introducer_loop()), loop.create_task(self._ticker())]

    def stop(self):
        """Close every channel and the introducer socket; no reconnecting."""
        if self._stopped:
            return
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        for peer in list(self._peers.values()):
            self._drop_conn(peer)
            if peer.task is not None:
                peer.task.cancel()

    async def aclose(self):
        """stop(), then wait (bounded) until the peer connections are closed."""
        self.stop()
        pending = [t for t in list(self._closing) + self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=3)

    def send(self, peer_id, text):
        if not isinstance(text, str):
            raise TypeError("send() takes str, got " + type(text).__name__)
        n = len(text)
        if n > MAX_MESSAGE_BYTES // 4:
            n = len(text.encode())
            if n > MAX_MESSAGE_BYTES:
                raise MessageTooLarge("message of %d bytes is over the %d-byte limit"
                                      % (n, MAX_MESSAGE_BYTES))
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
        if peer.queued_bytes + len(text) > QUEUE_LIMIT_BYTES:
            self.stats["dropped_queue_full"] += 1
            return False
        peer.queue.append(text)
        peer.queued_bytes += len(text)
        self.stats["queued"] += 1
        return True

    def peers_up(self):
        return sorted(p.id for p in self._peers.values() if p.up)

    def backlog(self, peer_id):
        peer = self._peers.get(peer_id)
        if peer is None or not peer.up:
            return 0
        return int(peer.conn.dc.bufferedAmount) + peer.queued_bytes

    def refresh(self):
        now = now_ms()
        for peer in list(self._peers.values()):
            if not peer.up and (self.wants is None or self.wants(peer.id)):
                peer.attempts = 0
                peer.next_try_ms = 0
            self._reconcile(peer, now)

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
                self.stats["introducer_attempts"] += 1
                code = None
                try:
                    async with http.ws_connect(self.ws_url, max_msg_size=1 << 20,
                                               autoping=True) as ws:
                        self._ws = ws
                        self._outbox = asyncio.Queue()
                        sender = asyncio.get_event_loop().create_task(self._ws_sender(ws))
                        self.stats["introducer_connects"] += 1
                        try:
                            await ws.send_str(json.dumps(self._join_frame()))
                            async for msg in ws:
                                if msg.type == aiohttp.WSMsgType.TEXT:
                                    self._on_ws_message(msg.data)
                                elif msg.type in (aiohttp.WSMsgType.ERROR,
                                                  aiohttp.WSMsgType.CLOSE):
                                    break
                        finally:
                            sender.cancel()
                        code = ws.close_code
                        self.last_error = "introducer closed the connection (code %s)" % code
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as e:
                    self.last_error = "cannot reach the introducer at %s: %s" % (
                        self.ws_url, str(e) or type(e).__name__)
                finally:
                    self._ws = None
                    self.introducer_up = False
                    self.presence = []
                if code == CLOSE_REPLACED:
                    self._fatal("replaced", "another process joined as node " + self.node)
                elif code == CLOSE_AUTH and self.error is None:
                    self._fatal("auth_failed", "introducer refused the join (code 4401)")
                if self.error is not None or self._stopped:
                    return
                delay = backoff_delay(self._ws_attempts, INTRODUCER_BACKOFF_MS)
                self._ws_attempts += 1
                await asyncio.sleep(delay / 1000)

    def _join_frame(self):
        frame = {"type": "join", "v": 1, "cluster": self.cluster, "node": self.node}
        if self.secret:
            frame["auth"] = join_auth(self.secret, self.cluster, self.node, int(time.time()))
        return frame

    def _ws_send(self, frame):
        ws = self._ws
        if ws is None or ws.closed:
            return False
        self._outbox.put_nowait(json.dumps(frame))
        return True

    async def _ws_sender(self, ws):
        """Frames go out one at a time, in the order they were made."""
        try:
            while True:
                await ws.send_str(await self._outbox.get())
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # the socket is going; the loop reconnects

    def _fatal(self, code, message):
        self.error = code
        self.last_error = message
        print("wraft transport: introducer: %s: %s" % (code, message))

    def _on_ws_message(self, data):
        try:
            frame = json.loads(data)
            kind = frame["type"]
        except Exception:
            self.stats["bad_signals"] += 1
            return
        if kind == "signal":
            self._on_signal(frame.get("from"), frame.get("data"))
        elif kind == "presence":
            self._on_presence(frame.get("nodes"))
        elif kind == "welcome":
            self._ws_attempts = 0
            self.introducer_up = True
            self.joined_once = True
            self.last_error = None
            if self._ice_fixed is None and isinstance(frame.get("ice_servers"), list):
                self.ice_servers = frame["ice_servers"]
        elif kind == "error":
            code = frame.get("code")
            if code in ("auth_required", "auth_failed", "replaced"):
                self._fatal(code, str(frame.get("message")))
            elif code != "unknown_target":
                print("wraft transport: introducer error: %s" % (frame.get("message"),))

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
            if pid not in self.presence:
                peer.attempts = 0
                peer.next_try_ms = 0
                peer.missing_since_ms = now
        self.presence = nodes
        for peer in list(self._peers.values()):
            self._reconcile(peer, now)
        self._callback(self.on_presence, nodes)

    def _on_signal(self, sender, data):
        if (not isinstance(sender, str) or sender == self.node or not isinstance(data, dict)
                or data.get("t") not in ("offer", "answer", "ice", "ask")):
            self.stats["bad_signals"] += 1
            return
        self._enqueue(self._peer(sender), data)

    def _signal(self, peer, data):
        self._ws_send({"type": "signal", "to": peer.id, "data": data})

    # ----- per-peer connection state -----------------------------------------

    def _peer(self, pid):
        peer = self._peers.get(pid)
        if peer is None:
            peer = self._peers[pid] = _Peer(pid)
        return peer

    def _i_offer(self, peer):
        return self.node < peer.id

    async def _ticker(self):
        while not self._stopped:
            await asyncio.sleep(TICK_MS / 1000)
            now = now_ms()
            for peer in list(self._peers.values()):
                if peer.up:
                    self._check_alive(peer, peer.conn, now)
                self._reconcile(peer, now)
                if peer.queue and peer.up:
                    self._drain(peer)

    def _check_alive(self, peer, conn, now):
        if conn.rx != conn.rx_seen:
            conn.rx_seen = conn.rx
            conn.heard_ms = now
            return
        silent = now - conn.heard_ms
        if silent > DEAD_AFTER_MS:
            self.stats["silent_peers_closed"] += 1
            print("wraft transport: peer %s silent for %d ms, closing" % (peer.id, silent))
            self._channel_closed(peer, conn)
            return
        if silent > PING_AFTER_MS:
            self._ctl_send(conn, "ping")
        if not conn.probing:
            conn.probing = True
            asyncio.get_event_loop().create_task(self._probe_network(conn))

    async def _probe_network(self, conn):
        """Bytes at the DTLS level: a peer whose page thread is busy still
        acknowledges, so it is not taken for dead."""
        seen = None
        try:
            report = await conn.pc.getStats()
            seen = sum(getattr(s, "bytesReceived", 0) for s in report.values()
                       if getattr(s, "type", None) == "transport")
        except Exception:
            pass
        finally:
            conn.probing = False
        if seen and seen != conn.net_seen:
            if conn.net_seen is not None:
                conn.heard_ms = now_ms()
            conn.net_seen = seen

    def _reconcile(self, peer, now):
        if peer.working and now - peer.work_started_ms > 2 * CONNECT_TIMEOUT_MS:
            print("wraft transport: peer %s: signal worker stuck, restarting" % peer.id)
            if peer.task is not None:
                peer.task.cancel()
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
            return
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
        if not peer.working and not self._stopped:
            peer.working = True
            peer.work_started_ms = now_ms()
            peer.task = asyncio.get_event_loop().create_task(self._work(peer))

    async def _work(self, peer):
        try:
            while peer.inbox and not self._stopped:
                item = peer.inbox.pop(0)
                try:
                    await self._apply(peer, item)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats["signal_errors"] += 1
                    print("wraft transport: peer %s: %s: %r" % (peer.id, item["t"], exc))
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
        await conn.pc.setLocalDescription(await conn.pc.createOffer())
        if peer.conn is conn:
            self._send_description(peer, conn, "offer")

    async def _handle_ask(self, peer):
        if not self._i_offer(peer):
            self.stats["bad_signals"] += 1
            return
        conn = peer.conn
        if conn is not None and not conn.open and now_ms() - conn.started_ms < CONNECT_TIMEOUT_MS:
            return
        await self._start_offer(peer)

    async def _handle_offer(self, peer, item):
        sid, sdp = item.get("s"), item.get("sdp")
        if self._i_offer(peer) or type(sid) is not int or not isinstance(sdp, str):
            self.stats["bad_signals"] += 1
            return
        if peer.conn is not None and peer.conn.sid == sid:
            return
        self._drop_conn(peer)
        conn = self._new_conn(peer, sid)
        await conn.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        conn.remote_set = True
        await conn.pc.setLocalDescription(await conn.pc.createAnswer())
        if peer.conn is conn:
            self._send_description(peer, conn, "answer")
            await self._add_pending_ice(conn)

    async def _handle_answer(self, peer, item):
        conn, sdp = peer.conn, item.get("sdp")
        if conn is None or conn.sid != item.get("s") or conn.remote_set or not isinstance(sdp, str):
            return
        await conn.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        conn.remote_set = True
        await self._add_pending_ice(conn)

    async def _handle_ice(self, peer, item):
        conn, text = peer.conn, item.get("c")
        if conn is None or conn.sid != item.get("s"):
            return
        try:
            cand = parse_candidate(text) if isinstance(text, str) else False
        except ValueError:
            cand = False
        if cand is False:
            self.stats["bad_signals"] += 1
            return
        if cand is None:
            return  # end of candidates: aiortc keeps checking what it has
        if not conn.remote_set:
            conn.pending_ice.append(cand)
            return
        await conn.pc.addIceCandidate(cand)

    async def _add_pending_ice(self, conn):
        pending, conn.pending_ice = conn.pending_ice, []
        for cand in pending:
            if conn.closed:
                return
            await conn.pc.addIceCandidate(cand)

    def _send_description(self, peer, conn, kind):
        self._signal(peer, {"t": kind, "s": conn.sid, "sdp": conn.pc.localDescription.sdp})

    def _new_conn(self, peer, sid):
        conn = _Conn(sid, self.ice_servers)
        peer.conn = conn
        stats = self.stats
        on_message = self.on_message
        pid = peer.id

        @conn.pc.on("connectionstatechange")
        def on_state():
            if not conn.closed and conn.pc.connectionState in ("failed", "closed"):
                self._channel_closed(peer, conn)

        @conn.dc.on("open")
        def on_open():
            if conn.closed or peer.conn is not conn:
                return
            conn.open = True
            conn.heard_ms = now_ms()
            peer.attempts = 0
            peer.next_try_ms = 0
            peer.missing_since_ms = None
            stats["channels_opened"] += 1
            self._set_up(peer, True)

        @conn.dc.on("close")
        def on_close():
            self._channel_closed(peer, conn)

        @conn.dc.on("message")
        def on_dc_message(data):
            conn.rx += 1
            if not isinstance(data, str):
                stats["dropped_binary"] += 1
                return
            stats["received"] += 1
            try:
                on_message(pid, data)
            except Exception as exc:
                stats["callback_errors"] += 1
                print("wraft transport: on_message raised %r" % (exc,))

        @conn.dc.on("bufferedamountlow")
        def on_low():
            self._drain(peer)

        @conn.ctl.on("message")
        def on_ctl(data):
            conn.rx += 1
            if data == "ping":
                self._ctl_send(conn, "pong")

        return conn

    @staticmethod
    def _ctl_send(conn, text):
        try:
            if conn.ctl.readyState == "open":
                conn.ctl.send(text)
        except Exception:
            pass

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
        task = asyncio.get_event_loop().create_task(conn.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        if peer.queue:
            self.stats["dropped_on_close"] += len(peer.queue)
            peer.queue = []
            peer.queued_bytes = 0
        self._set_up(peer, False)

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
            print("wraft transport: callback raised %r" % (exc,))

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
