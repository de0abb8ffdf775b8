"""The /ws introducer (protocol v2, see PROTOCOL.md): nodes join a cluster by
name, see who is present, and relay opaque signals to each other.

Nothing here waits for a peer: every frame to a socket goes through that
socket's bounded Outbox, written by its own task; a socket that cannot keep
up is cut and nobody else notices."""

import asyncio
import json
import logging
import math
import re
import time

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from .addresses import CLIENT, AddressBook, address_key
from .auth import new_nonce, proof_is_valid
from .identity import TOKEN_RE, IdBook
from .origins import Origins
from .outbox import DEFAULT_LIMIT_BYTES, DEFAULT_SEND_TIMEOUT_S, Outbox
from .ratelimit import LogThrottle, TokenBucket

log = logging.getLogger("signaling.introducer")

PROTOCOL_VERSION = 2
MAX_FRAME_BYTES = 64 * 1024
# aiohttp cuts anything above this at the transport (1009, no error frame);
# between MAX_FRAME_BYTES and this we answer too_large ourselves first.
TRANSPORT_MAX_BYTES = 1024 * 1024
# Members (up to 7 voters plus learners) and client windows share a cluster.
MAX_NODES_PER_CLUSTER = 128
DEFAULT_MAX_CLUSTERS = 1000
DEFAULT_MAX_SOCKETS = 10_000
# Every frame a socket sends counts, control frames (ping, pong) included.
DEFAULT_RATE = 200.0
DEFAULT_BURST = 400.0
# Each join (and so each leave) makes a presence frame for every member.
JOIN_RATE = 1.0
JOIN_BURST = 5.0
JOIN_MAX_STRIKES = 10.0
DEFAULT_HEARTBEAT_S = 20.0
# From the upgrade to the welcome, pongs and pings included: one deadline.
DEFAULT_JOIN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 3.0  # how long a close waits for the peer's close frame
SWEEP_S = 1.0

CLOSE_AUTH = 4401
CLOSE_ID_HELD = 4403
CLOSE_JOIN_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_FLOOD = 4429

KINDS = ("member", "client")
CLUSTER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NODE_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
CLIENT_ID_RE = re.compile(r"c[A-Za-z0-9]{4,31}")

# What a socket sends us (autoping is off, so pings and pongs count too).
FRAME_TYPES = frozenset((WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG))

# ensure_ascii: a lone surrogate from a "\ud800" escape must not break send_str.
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
PONG = '{"type":"pong"}'


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def parse_frame(text: str):
    """Strict JSON: no NaN/Infinity, no number that only fits as infinity
    (what we relay must parse anywhere)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def kind_of_id(node: str) -> str | None:
    """Client ids are "c" + 4..31 letters/digits; member ids never start with "c"."""
    if CLIENT_ID_RE.fullmatch(node):
        return "client"
    return None if node.startswith("c") else "member"


class ProtocolError(Exception):
    """A refused frame: becomes {"type":"error","code":...}; the socket stays."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Socket:
    """One /ws connection and, once joined, its (cluster, node, kind) identity."""

    __slots__ = ("ws", "transport", "address", "outbox", "bucket", "join_bucket", "cluster",
                 "node", "kind", "nonce", "join_by", "ice_refresh_at")

    def __init__(self, ws, transport, address: str, loop, cut, *, rate: float, burst: float,
                 outbox_limit: int):
        now = loop.time()
        self.ws = ws
        self.transport = transport
        self.address = address
        self.outbox = Outbox(ws, loop, lambda reason: cut(self, reason), outbox_limit)
        self.bucket = TokenBucket(rate, burst, now)
        self.join_bucket = TokenBucket(JOIN_RATE, JOIN_BURST, now, strike_fade=JOIN_RATE,
                                       max_strikes=JOIN_MAX_STRIKES)
        self.cluster: str | None = None
        self.node: str | None = None
        self.kind: str | None = None
        self.nonce = new_nonce()
        self.join_by = 0.0  # loop time by which an unjoined socket must have joined
        self.ice_refresh_at = math.inf


def error_frame(code: str, message: str) -> str:
    return _dumps({"type": "error", "code": code, "message": message})


def _valid_name(value, pattern: re.Pattern) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _frame_too_large(text: str) -> bool:
    # A char is 1-4 UTF-8 bytes: only encode when the length is ambiguous.
    n = len(text)
    if n > MAX_FRAME_BYTES:
        return True
    if n * 4 <= MAX_FRAME_BYTES:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES


class Introducer:
    """Holds the clusters and handles every /ws socket."""

    def __init__(self, *, access_secret: str | None = None, ice_servers=(), turn=None,
                 origins: Origins | None = None,
                 max_clusters: int = DEFAULT_MAX_CLUSTERS,
                 max_nodes: int = MAX_NODES_PER_CLUSTER,
                 max_sockets: int = DEFAULT_MAX_SOCKETS,
                 rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST,
                 heartbeat: float = DEFAULT_HEARTBEAT_S,
                 join_timeout: float = DEFAULT_JOIN_TIMEOUT_S,
                 send_timeout: float = DEFAULT_SEND_TIMEOUT_S,
                 outbox_limit: int = DEFAULT_LIMIT_BYTES,
                 addresses: AddressBook | None = None, ids: IdBook | None = None,
                 clock=time.monotonic, wall_clock=time.time):
        self.access_secret = access_secret or None
        self.ice_servers = [dict(s) for s in ice_servers]
        self.turn = turn  # a turn.TurnMinter, or None
        self.origins = origins or Origins()
        self.max_clusters = max_clusters
        self.max_nodes = max_nodes
        self.max_sockets = max_sockets
        self.rate = rate
        self.burst = burst
        self.heartbeat = heartbeat
        self.join_timeout = join_timeout
        self.send_timeout = send_timeout
        self.outbox_limit = outbox_limit
        self.addresses = addresses or AddressBook()
        self.ids = ids or IdBook()
        self.clock = clock  # seconds, monotonic: token memory
        self.wall_clock = wall_clock  # unix seconds: TURN expiry
        self.clusters: dict[str, dict[str, Socket]] = {}
        self.sockets: set[Socket] = set()
        self.note = LogThrottle(log)
        self._closers: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    # -- socket lifecycle -------------------------------------------------

    async def handle_socket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if not self.origins.ws_origin_ok(origin, request.headers.get(hdrs.HOST)):
            self.note(logging.WARNING, "origin", "refused /ws from origin %.100r (host %.100r)",
                      origin, request.headers.get(hdrs.HOST))
            raise web.HTTPForbidden(text="this page's origin may not use this introducer "
                                         "(see --allow-origin)\n")
        if len(self.sockets) >= self.max_sockets:
            self.note(logging.WARNING, "max_sockets", "refused /ws: %d sockets open (the maximum)",
                      len(self.sockets))
            raise web.HTTPServiceUnavailable(text="server full, try again later\n",
                                             headers={hdrs.RETRY_AFTER: "10"})
        loop = asyncio.get_running_loop()
        now = loop.time()
        address = address_key(request.get(CLIENT, request.remote))
        refusal = self.addresses.open_socket(address, now)
        if refusal is not None:
            self.note(logging.WARNING, "address_" + refusal, "refused /ws from %s: %s", address,
                      "too many sockets" if refusal == "sockets" else "connecting too fast")
            raise web.HTTPTooManyRequests(text="too many connections from your address\n",
                                          headers={hdrs.RETRY_AFTER: "10"})
        try:
            ws = web.WebSocketResponse(autoping=False, heartbeat=self.heartbeat or None,
                                       max_msg_size=TRANSPORT_MAX_BYTES, timeout=CLOSE_TIMEOUT_S)
            await ws.prepare(request)
            sock = Socket(ws, request.transport, address, loop, self._cut, rate=self.rate,
                          burst=self.burst, outbox_limit=self.outbox_limit)
            self.sockets.add(sock)
            if self._sweeper is None:
                self._sweeper = loop.create_task(self._sweep_forever())
            try:
                self._say_hello(sock, now)
                await self._serve(sock, loop)
            finally:
                self.sockets.discard(sock)
                self.leave_cluster(sock)
        finally:
            self.addresses.close_socket(address)
        return ws

    def _say_hello(self, sock: Socket, now: float) -> None:
        """The challenge for the next join: a fresh nonce, and whether the
        join must prove it knows the access secret."""
        sock.nonce = new_nonce()
        sock.join_by = now + self.join_timeout
        sock.outbox.post(_dumps({"type": "hello", "v": PROTOCOL_VERSION, "nonce": sock.nonce,
                                 "access": "secret" if self.access_secret else "open"}))

    async def _serve(self, sock: Socket, loop) -> None:
        ws = sock.ws
        bucket = sock.bucket
        while True:
            if sock.cluster is None and self.join_timeout:
                try:
                    # An absolute deadline: pongs and pings do not move it.
                    async with asyncio.timeout_at(sock.join_by):
                        msg = await ws.receive()
                except TimeoutError:
                    await self._close(sock, CLOSE_JOIN_TIMEOUT, "join_timeout",
                                      f"no join within {self.join_timeout:g} s")
                    return
            else:
                msg = await ws.receive()
            kind = msg.type
            if kind not in FRAME_TYPES:
                # CLOSE / CLOSING / CLOSED / ERROR: aiohttp has closed or is closing.
                return
            if not bucket.take(loop.time()):
                if bucket.flooding:
                    await self._close_flood(sock, "sending far over the frame rate")
                    return
                if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                    sock.outbox.post(error_frame("rate_limited", "over the message rate; frame dropped"))
                continue
            if kind is not WSMsgType.TEXT:
                if kind is WSMsgType.PING:
                    sock.outbox.post(msg.data)  # the pong, behind what is already queued
                elif kind is WSMsgType.BINARY:
                    self._refused(sock, "bad_message", "binary frames are not supported; send JSON text")
                continue
            text = msg.data
            if _frame_too_large(text):
                self._refused(sock, "too_large", f"frame over {MAX_FRAME_BYTES} bytes")
                await self._close(sock, WSCloseCode.MESSAGE_TOO_BIG, None, None)
                return
            try:
                await self.handle_frame(sock, text)
            except ProtocolError as exc:
                self._refused(sock, exc.code, exc.message)
            except RecursionError:
                self._refused(sock, "bad_message", "data nested too deeply")
            except Exception as exc:
                # A bug here must cost one frame, never the socket or the server.
                self.note(logging.ERROR, "internal", "unexpected error handling a frame: %r", exc,
                          exc_info=True)
                sock.outbox.post(error_frame("internal_error", "the server failed on this frame"))
            if ws.closed:
                return

    def _refused(self, sock: Socket, code: str, message: str) -> None:
        """Bad input: an error frame to the sender, one throttled log line."""
        self.note(logging.INFO, "refused_" + code, "refused a frame from %s: %s", sock.address, code)
        sock.outbox.post(error_frame(code, message))

    async def _close(self, sock: Socket, code: int, error: str | None, message: str | None) -> None:
        """Close after an error frame (and whatever was queued before it)."""
        if error is not None:
            sock.outbox.post(error_frame(error, message))
        if await sock.outbox.flushed(CLOSE_TIMEOUT_S):
            await self._close_now(sock, code, (error or "").encode())
        else:
            self._cut(sock, "send_timeout")

    async def _close_flood(self, sock: Socket, why: str) -> None:
        """Stop reading a flood at once (what it still sends stays in the
        kernel, unparsed), say 4429, and make its address wait before it
        connects again."""
        self.note(logging.WARNING, "flood", "closed a socket from %s (4429): %s", sock.address, why)
        if sock.transport is not None:
            sock.transport.pause_reading()
        self.addresses.penalize(sock.address, asyncio.get_running_loop().time())
        await self._close(sock, CLOSE_FLOOD, None, None)

    async def _close_now(self, sock: Socket, code: int, reason: bytes) -> None:
        try:
            await sock.ws.close(code=code, message=reason)
        except (ConnectionError, RuntimeError):
            pass

    def _cut(self, sock: Socket, reason: str) -> None:
        """Drop a socket that cannot be written to: no close handshake (it
        would wait for the same reader), the TCP connection is aborted."""
        if reason == "gone":
            return
        self.note(logging.WARNING, "cut_" + reason, "cut a socket from %s (%s): it does not read "
                  "what it is sent", sock.address, reason)
        if sock.transport is not None:
            sock.transport.abort()

    async def _sweep_forever(self) -> None:
        """Once a second: cut sockets stuck in one send, refresh TURN
        credentials, expire remembered ids, forget idle addresses."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            now = loop.time()
            for sock in list(self.sockets):
                if sock.outbox.stuck(now, self.send_timeout):
                    sock.outbox.kill("send_timeout")
                elif sock.cluster is not None and now >= sock.ice_refresh_at:
                    sock.outbox.post(_dumps({"type": "ice", "ice_servers": self._ice_for(sock, now)}))
            self.ids.expire(self.clock())
            self.addresses.prune(now)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Close every socket with 1001 (server going away), all at once and
        bounded: a dead peer never answers the close handshake."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        closes = [s.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                  for s in list(self.sockets)]
        pending = asyncio.gather(*closes, *self._closers, return_exceptions=True)
        try:
            await asyncio.wait_for(pending, timeout)
        except asyncio.TimeoutError:
            log.warning("some sockets did not close within %.0f s", timeout)

    # -- frames -----------------------------------------------------------

    async def handle_frame(self, sock: Socket, text: str) -> None:
        try:
            frame = parse_frame(text)
        except ValueError:
            raise ProtocolError("bad_json", "frame is not valid JSON (NaN, Infinity and numbers "
                                "beyond the float range are not JSON)") from None
        except RecursionError:
            raise ProtocolError("bad_json", "JSON nested too deeply") from None
        if not isinstance(frame, dict):
            raise ProtocolError("bad_message", "frame must be a JSON object")
        kind = frame.get("type")
        if kind == "signal":
            self.relay_signal(sock, frame)
        elif kind == "join":
            await self.join_cluster(sock, frame)
        elif kind == "ping":
            sock.outbox.post(PONG)
        elif kind == "leave":
            if sock.cluster is None:
                raise ProtocolError("not_joined", "leave before join")
            self.leave_cluster(sock)
            self._say_hello(sock, asyncio.get_running_loop().time())
        elif not isinstance(kind, str):
            raise ProtocolError("bad_message", "frame needs a string 'type'")
        else:
            raise ProtocolError("unknown_type", f"unknown type {kind[:40]!r}")

    def _check_join_frame(self, frame: dict) -> tuple[str, str, str, str | None]:
        if "v" not in frame:
            raise ProtocolError("bad_message", "join needs 'v' (protocol version)")
        version = frame["v"]
        if type(version) is not int or version != PROTOCOL_VERSION:
            raise ProtocolError("bad_version", f"protocol version {PROTOCOL_VERSION} only")
        cluster, node, kind = frame.get("cluster"), frame.get("node"), frame.get("kind")
        if not _valid_name(cluster, CLUSTER_RE):
            raise ProtocolError("bad_message", "cluster must be 1-64 chars of [A-Za-z0-9_.-]")
        if not _valid_name(node, NODE_RE):
            raise ProtocolError("bad_message", "node must be 1-32 chars of [A-Za-z0-9_.-]")
        if kind not in KINDS:
            raise ProtocolError("bad_message", "kind must be \"member\" or \"client\"")
        if kind_of_id(node) != kind:
            raise ProtocolError("kind_mismatch", "client ids are c + 4..31 letters/digits; "
                                "member ids never start with c")
        token = frame.get("token")
        if token is not None and not _valid_name(token, TOKEN_RE):
            raise ProtocolError("bad_message", "token must be the 22 characters a welcome gave")
        return cluster, node, kind, token

    async def join_cluster(self, sock: Socket, frame: dict) -> None:
        if sock.cluster is not None:
            raise ProtocolError("already_joined",
                                f"already joined as {sock.node!r} in {sock.cluster!r}; leave first")
        cluster, node, kind, token = self._check_join_frame(frame)
        now = asyncio.get_running_loop().time()
        if not sock.join_bucket.take(now):
            if sock.join_bucket.flooding:
                await self._close_flood(sock, "joining over and over")
                return
            raise ProtocolError("rate_limited", f"at most {JOIN_RATE:g} join/s per socket")
        if not self.addresses.may_join(sock.address, now):
            raise ProtocolError("rate_limited", "too many connects and joins from your address")
        if self.access_secret is not None:
            proof = frame.get("proof")
            if not proof_is_valid(self.access_secret, sock.nonce, cluster, node, kind, proof):
                code = "auth_required" if proof is None else "auth_failed"
                self.note(logging.INFO, code, "refused a join from %s: %s", sock.address, code)
                await self._close(sock, CLOSE_AUTH, code, "this server needs the access secret "
                                  "(#access= in the link it printed)" if proof is None else
                                  "wrong proof: this link's access secret is not the server's")
                return
        members = self.clusters.get(cluster)
        if members is None and len(self.clusters) >= self.max_clusters:
            raise ProtocolError("too_many_clusters",
                                f"server holds its maximum of {self.max_clusters} clusters")
        if members is not None and node not in members and len(members) >= self.max_nodes:
            raise ProtocolError("cluster_full", f"cluster {cluster!r} has {self.max_nodes} nodes")
        if not self.addresses.enter_cluster(sock.address, cluster):
            raise ProtocolError("address_clusters", f"your address is in "
                                f"{self.addresses.max_clusters} clusters already")
        outcome, previous = self.ids.claim(cluster, node, kind, token, sock, self.clock())
        if outcome == "held":
            self.addresses.leave_cluster(sock.address, cluster)
            self.note(logging.INFO, "id_held", "refused a join from %s: id held", sock.address)
            await self._close(sock, CLOSE_ID_HELD, "id_held",
                              f"node {node!r} of cluster {cluster!r} is another window's: it is "
                              "held, or was until recently, and this join has not its token")
            return
        if members is None:
            members = self.clusters[cluster] = {}
        members[node] = sock
        sock.cluster, sock.node, sock.kind = cluster, node, kind
        sock.nonce = None  # one join per challenge
        if previous is not None:
            self.replace_holder(previous)
        sock.outbox.post(_dumps({"type": "welcome", "v": PROTOCOL_VERSION, "cluster": cluster,
                                 "node": node, "kind": kind, "token": self.ids.token(cluster, node),
                                 "ice_servers": self._ice_for(sock, now)}))
        self.broadcast_presence(cluster)

    def _ice_for(self, sock: Socket, now: float) -> list[dict]:
        if self.turn is None:
            return self.ice_servers
        sock.ice_refresh_at = now + self.turn.ttl / 2
        return self.ice_servers + self.turn.servers(sock.node, self.wall_clock())

    def replace_holder(self, previous: Socket) -> None:
        """A newer socket presented the id's token (a reload reconnects
        before the old socket is seen dead). Close the old one in the
        background: closing waits for the peer, which may be gone."""
        self.addresses.leave_cluster(previous.address, previous.cluster)
        previous.cluster = previous.node = None
        task = asyncio.ensure_future(self._close(previous, CLOSE_REPLACED, "replaced",
                                                 "a newer connection presented this id's token"))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def leave_cluster(self, sock: Socket) -> None:
        cluster, node = sock.cluster, sock.node
        if cluster is None:
            return
        sock.cluster = sock.node = None
        sock.ice_refresh_at = math.inf
        self.addresses.leave_cluster(sock.address, cluster)
        members = self.clusters.get(cluster)
        if members is None or members.get(node) is not sock:
            return
        del members[node]
        self.ids.release(cluster, node, sock.kind, sock, self.clock())
        if not members:
            del self.clusters[cluster]
            return
        self.broadcast_presence(cluster)

    def broadcast_presence(self, cluster: str) -> None:
        members = self.clusters.get(cluster)
        if not members:
            return
        text = _dumps({"type": "presence", "cluster": cluster, "nodes": sorted(members)})
        for peer in list(members.values()):
            peer.outbox.post(text)

    def relay_signal(self, sock: Socket, frame: dict) -> None:
        if sock.cluster is None:
            raise ProtocolError("not_joined", "signal before join")
        to = frame.get("to")
        if not _valid_name(to, NODE_RE):
            raise ProtocolError("bad_message", "signal needs 'to': a node id")
        if "data" not in frame:
            raise ProtocolError("bad_message", "signal needs 'data'")
        target = self.clusters[sock.cluster].get(to)
        if target is None:
            raise ProtocolError("unknown_target", f"node {to!r} is not in cluster {sock.cluster!r}")
        # The server stamps 'from': a client can never pose as another node.
        target.outbox.post(_dumps({"type": "signal", "from": sock.node, "data": frame["data"]}))
