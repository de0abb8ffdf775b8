"""The /ws introducer (protocol v1, see PROTOCOL.md): nodes join a cluster by
name, see who is present, and relay opaque signals to each other."""

import asyncio
import json
import logging
import re
import time

from aiohttp import WSCloseCode, WSMsgType, web

from .auth import check_join_auth
from .ratelimit import TokenBucket

log = logging.getLogger("signaling.introducer")

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
# aiohttp cuts anything above this at the transport (1009, no error frame);
# between MAX_FRAME_BYTES and this we answer too_large ourselves first.
TRANSPORT_MAX_BYTES = 1024 * 1024
# Members (up to 7 voters plus learners) and client windows share a cluster.
MAX_NODES_PER_CLUSTER = 128
DEFAULT_MAX_CLUSTERS = 1000
DEFAULT_RATE = 200.0
DEFAULT_BURST = 400.0
DEFAULT_HEARTBEAT_S = 20.0
# A socket that has not joined a cluster within this long (from connecting or
# from its last leave) is closed: idle unjoined sockets only cost descriptors.
DEFAULT_JOIN_TIMEOUT_S = 30.0

CLOSE_AUTH = 4401
CLOSE_REPLACED = 4409
CLOSE_JOIN_TIMEOUT = 4408
CLOSE_FLOOD = 4429

CLUSTER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NODE_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")

# ensure_ascii: a lone surrogate from a "\ud800" escape must not break send_str.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class ProtocolError(Exception):
    """A refused frame: becomes {"type":"error","code":...}; the socket stays."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Member:
    """One socket and, once joined, its (cluster, node) identity."""

    __slots__ = ("ws", "cluster", "node", "bucket", "join_by")

    def __init__(self, ws: web.WebSocketResponse, bucket: TokenBucket, join_by: float):
        self.ws = ws
        self.cluster: str | None = None
        self.node: str | None = None
        self.bucket = bucket
        self.join_by = join_by  # loop time by which an unjoined socket must join


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


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    """Send, ignoring a peer that is already going away (its own handler cleans up)."""
    try:
        await ws.send_str(text)
    except (ConnectionError, RuntimeError):
        pass


class Introducer:
    """Holds the clusters and handles every /ws socket."""

    def __init__(self, *, secret: str | None = None, ice_servers=(),
                 max_clusters: int = DEFAULT_MAX_CLUSTERS,
                 max_nodes: int = MAX_NODES_PER_CLUSTER,
                 rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST,
                 heartbeat: float = DEFAULT_HEARTBEAT_S,
                 join_timeout: float = DEFAULT_JOIN_TIMEOUT_S, clock=time.time):
        self.secret = secret or None
        self.ice_servers = [dict(s) for s in ice_servers]
        self.max_clusters = max_clusters
        self.max_nodes = max_nodes
        self.rate = rate
        self.burst = burst
        self.heartbeat = heartbeat
        self.join_timeout = join_timeout
        self.clock = clock
        self.clusters: dict[str, dict[str, Member]] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self._closers: set[asyncio.Task] = set()

    # -- socket lifecycle -------------------------------------------------

    async def handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=self.heartbeat or None,
                                   max_msg_size=TRANSPORT_MAX_BYTES)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        now = loop.time()
        member = Member(ws, TokenBucket(self.rate, self.burst, now), now + self.join_timeout)
        self.sockets.add(ws)
        try:
            await self._serve(member, loop)
        finally:
            self.sockets.discard(ws)
            await self.leave_cluster(member)
        return ws

    async def _serve(self, member: Member, loop) -> None:
        ws = member.ws
        bucket = member.bucket
        while True:
            if member.cluster is None and self.join_timeout:
                try:
                    msg = await ws.receive(timeout=max(member.join_by - loop.time(), 0.001))
                except asyncio.TimeoutError:
                    await _send(ws, error_frame("join_timeout",
                                                f"no join within {self.join_timeout:g} s"))
                    await ws.close(code=CLOSE_JOIN_TIMEOUT, message=b"join timeout")
                    return
            else:
                msg = await ws.receive()
            kind = msg.type
            if kind is not WSMsgType.TEXT and kind is not WSMsgType.BINARY:
                # CLOSE / CLOSING / CLOSED / ERROR: aiohttp has closed or is closing.
                return
            if not bucket.take(loop.time()):
                if bucket.flooding:
                    await ws.close(code=CLOSE_FLOOD, message=b"flood")
                    return
                await _send(ws, error_frame("rate_limited", "over the message rate; frame dropped"))
                continue
            if kind is WSMsgType.BINARY:
                await _send(ws, error_frame("bad_message", "binary frames are not supported; send JSON text"))
                continue
            text = msg.data
            if _frame_too_large(text):
                await _send(ws, error_frame("too_large", f"frame over {MAX_FRAME_BYTES} bytes"))
                await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"too large")
                return
            try:
                await self.handle_frame(member, text)
            except ProtocolError as exc:
                await _send(ws, error_frame(exc.code, exc.message))
            except RecursionError:
                await _send(ws, error_frame("bad_message", "data nested too deeply"))
            except Exception:
                # A bug here must cost one frame, never the socket or the server.
                log.exception("unexpected error handling a frame")
                await _send(ws, error_frame("internal_error", "the server failed on this frame"))
            if ws.closed:
                return

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Close every socket with 1001 (server going away), all at once and
        bounded: a dead peer never answers the close handshake."""
        closes = [ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                  for ws in list(self.sockets)]
        pending = asyncio.gather(*closes, *self._closers, return_exceptions=True)
        try:
            await asyncio.wait_for(pending, timeout)
        except asyncio.TimeoutError:
            log.warning("some sockets did not close within %.0f s", timeout)

    # -- frames -----------------------------------------------------------

    async def handle_frame(self, member: Member, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            raise ProtocolError("bad_json", "frame is not valid JSON") from None
        except RecursionError:
            raise ProtocolError("bad_json", "JSON nested too deeply") from None
        if not isinstance(frame, dict):
            raise ProtocolError("bad_message", "frame must be a JSON object")
        kind = frame.get("type")
        if kind == "signal":
            await self.relay_signal(member, frame)
        elif kind == "join":
            await self.join_cluster(member, frame)
        elif kind == "ping":
            await _send(member.ws, '{"type":"pong"}')
        elif kind == "leave":
            if member.cluster is None:
                raise ProtocolError("not_joined", "leave before join")
            await self.leave_cluster(member)
            member.join_by = asyncio.get_running_loop().time() + self.join_timeout
        elif not isinstance(kind, str):
            raise ProtocolError("bad_message", "frame needs a string 'type'")
        else:
            raise ProtocolError("unknown_type", f"unknown type {kind[:40]!r}")

    async def join_cluster(self, member: Member, frame: dict) -> None:
        if member.cluster is not None:
            raise ProtocolError("already_joined",
                                f"already joined as {member.node!r} in {member.cluster!r}; leave first")
        if "v" not in frame:
            raise ProtocolError("bad_message", "join needs 'v' (protocol version)")
        version = frame["v"]
        if type(version) is not int or version != PROTOCOL_VERSION:
            raise ProtocolError("bad_version", f"protocol version {PROTOCOL_VERSION} only")
        cluster, node = frame.get("cluster"), frame.get("node")
        if not _valid_name(cluster, CLUSTER_RE):
            raise ProtocolError("bad_message", "cluster must be 1-64 chars of [A-Za-z0-9_.-]")
        if not _valid_name(node, NODE_RE):
            raise ProtocolError("bad_message", "node must be 1-32 chars of [A-Za-z0-9_.-]")
        if self.secret is not None:
            refusal = check_join_auth(self.secret, cluster, node, frame.get("auth"), self.clock())
            if refusal is not None:
                text = ("this server needs auth {ts, mac} in join" if refusal == "auth_required"
                        else "auth refused (bad mac, or ts more than 120 s off)")
                await _send(member.ws, error_frame(refusal, text))
                await member.ws.close(code=CLOSE_AUTH, message=refusal.encode())
                return
        members = self.clusters.get(cluster)
        if members is None:
            if len(self.clusters) >= self.max_clusters:
                raise ProtocolError("too_many_clusters",
                                    f"server holds its maximum of {self.max_clusters} clusters")
            members = self.clusters[cluster] = {}
        stale = members.get(node)
        if stale is None and len(members) >= self.max_nodes:
            raise ProtocolError("cluster_full", f"cluster {cluster!r} has {self.max_nodes} nodes")
        members[node] = member
        member.cluster, member.node = cluster, node
        if stale is not None:
            self.replace_stale_member(stale)
        await _send(member.ws, _dumps({"type": "welcome", "v": PROTOCOL_VERSION, "cluster": cluster,
                                       "node": node, "ice_servers": self.ice_servers}))
        await self.broadcast_presence(cluster)

    def replace_stale_member(self, stale: Member) -> None:
        """The newer socket wins a duplicate id (a reload reconnects before the
        old socket is seen dead). Close the old one in the background: closing
        waits for the peer, which may be gone."""
        stale.cluster = stale.node = None

        async def close_replaced():
            await _send(stale.ws, error_frame("replaced", "a newer connection joined with this node id"))
            await stale.ws.close(code=CLOSE_REPLACED, message=b"replaced")

        task = asyncio.ensure_future(close_replaced())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def leave_cluster(self, member: Member) -> None:
        cluster, node = member.cluster, member.node
        if cluster is None:
            return
        member.cluster = member.node = None
        members = self.clusters.get(cluster)
        # Only remove ourselves: a newer socket may already own this id.
        if members is None or members.get(node) is not member:
            return
        del members[node]
        if not members:
            del self.clusters[cluster]
            return
        await self.broadcast_presence(cluster)

    async def broadcast_presence(self, cluster: str) -> None:
        members = self.clusters.get(cluster)
        if not members:
            return
        text = _dumps({"type": "presence", "cluster": cluster, "nodes": sorted(members)})
        for peer in list(members.values()):
            await _send(peer.ws, text)

    async def relay_signal(self, member: Member, frame: dict) -> None:
        if member.cluster is None:
            raise ProtocolError("not_joined", "signal before join")
        to = frame.get("to")
        if not _valid_name(to, NODE_RE):
            raise ProtocolError("bad_message", "signal needs 'to': a node id")
        if "data" not in frame:
            raise ProtocolError("bad_message", "signal needs 'data'")
        target = self.clusters[member.cluster].get(to)
        if target is None:
            raise ProtocolError("unknown_target", f"node {to!r} is not in cluster {member.cluster!r}")
        # The server stamps 'from': a client can never pose as another node.
        await _send(target.ws, _dumps({"type": "signal", "from": member.node, "data": frame["data"]}))
