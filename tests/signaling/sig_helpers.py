"""WebSocket helpers for the signaling tests: a websockets-based client and a
raw one for what libraries will not do."""

import asyncio
import base64
import json
import os
import socket
import struct

from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signaling.auth import join_proof
from signaling.introducer import kind_of_id

REPO_ROOT = Path(__file__).resolve().parents[2]


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws"


async def recv_json(ws, timeout: float = 3.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, kind: str, timeout: float = 3.0) -> dict:
    """Next frame of type `kind`, skipping others (e.g. presence)."""
    while True:
        msg = await recv_json(ws, timeout)
        if msg["type"] == kind:
            return msg


async def expect_silence(ws, wait: float = 0.2) -> None:
    try:
        msg = await asyncio.wait_for(ws.recv(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {msg!r}")


async def expect_close(ws, code: int, timeout: float = 5.0) -> list:
    """Read until the server closes; assert the close code; return frames seen."""
    seen = []
    async def drain():
        try:
            async for frame in ws:  # ends on 1000/1001, raises on other codes
                seen.append(json.loads(frame))
        except ConnectionClosed:
            pass
    await asyncio.wait_for(drain(), timeout)  # websockets ends iteration on close
    assert ws.close_code == code, (ws.close_code, ws.close_reason, seen[-3:])
    return seen


async def open_ws(base: str, *, source: str | None = None, origin: str | None = None,
                  host: str | None = None, headers: dict | None = None):
    """Connect and read the server's hello (kept as ws.hello). `source`: a
    loopback address to connect from (127.0.0.0/8 is all ours), so that
    tests can be several client addresses."""
    url, kw = ws_url(base), {}
    if host:  # connect to the server, ask for another name (as a browser would)
        sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])),
                                        source_address=(source, 0) if source else None)
        url, kw = f"ws://{host}/ws", {"sock": sock}
    elif source:
        kw["local_addr"] = (source, 0)
    headers = dict(headers or {}, **({"Origin": origin} if origin else {}))
    ws = await connect(url, max_size=None, open_timeout=5, close_timeout=2,
                       additional_headers=headers or None, **kw)
    ws.hello = await recv_json(ws)
    assert ws.hello["type"] == "hello", ws.hello
    return ws


def join_frame(ws, cluster: str, node: str, *, secret: str | None = None, **extra) -> dict:
    """A v2 join for `node` (its kind from the id), with a proof when `secret`."""
    frame = {"type": "join", "v": 2, "cluster": cluster, "node": node,
             "kind": kind_of_id(node) or "member", **extra}
    if secret is not None:
        frame["proof"] = join_proof(secret, ws.hello["nonce"], cluster, node, frame["kind"])
    return frame


async def join(base: str, cluster: str, node: str, *, source: str | None = None, **extra):
    """Connect and join; return (ws, welcome). Consumes the presence after welcome."""
    ws = await open_ws(base, source=source)
    await ws.send(json.dumps(join_frame(ws, cluster, node, **extra)))
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    presence = await recv_json(ws)
    assert presence["type"] == "presence" and node in presence["nodes"], presence
    return ws, welcome


HEALTH_SOURCES = ("127.0.0.250", "127.0.0.251")  # not the address tests abuse from


async def assert_server_healthy(base: str, cluster: str = "health", **extra) -> None:
    """A fresh pair (from other addresses) can still join and relay, so abuse
    elsewhere went unnoticed."""
    a, _ = await join(base, cluster, "a", source=HEALTH_SOURCES[0], **extra)
    b, _ = await join(base, cluster, "b", source=HEALTH_SOURCES[1], **extra)
    assert (await recv_json(a))["nodes"] == ["a", "b"]
    await b.send(json.dumps({"type": "signal", "to": "a", "data": {"ok": 1}}))
    assert await recv_json(a) == {"type": "signal", "from": "b", "data": {"ok": 1}}
    await a.close()
    await b.close()


class RawWebSocket:
    """A bare client (asyncio streams) for what libraries won't do: never
    answer pings, send odd frames, vanish without a close frame."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, base: str, source: str | None = None, hello: bool = True,
                      read_limit: int = 2 ** 16) -> "RawWebSocket":
        """Upgrade, and read the hello unless told not to (it stays unread)."""
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0) if source else None, limit=read_limit)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        raw = cls(reader, writer)
        if hello:
            raw.hello = await raw.read_json()
            assert raw.hello["type"] == "hello", raw.hello
        return raw

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    def send_json(self, obj) -> None:
        self.send_frame(0x1, json.dumps(obj).encode())

    def send_join(self, cluster: str, node: str, **extra) -> None:
        self.send_json(join_frame(self, cluster, node, **extra))

    async def read_frame(self, timeout: float = 3.0) -> tuple[int, bytes]:
        async def read():
            b1, b2 = await self.reader.readexactly(2)
            n = b2 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return b1 & 0x0F, await self.reader.readexactly(n)
        return await asyncio.wait_for(read(), timeout)

    async def read_json(self, timeout: float = 3.0) -> dict:
        opcode, payload = await self.read_frame(timeout)
        assert opcode == 0x1, (opcode, payload)
        return json.loads(payload)

    def abort(self) -> None:
        self.writer.transport.abort()
