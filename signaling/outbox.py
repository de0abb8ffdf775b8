"""What the server sends one socket: a bounded queue written by that socket's
own task, so that a relay, a presence broadcast or a pong never waits for a
slow reader. A socket whose queue overflows, or whose one send has been stuck
longer than the send timeout, is cut (the sweep in introducer.py checks)."""

import asyncio
from collections import deque

DEFAULT_LIMIT_BYTES = 1 << 20  # 16 full-size signals; presence of 128 ids is ~4 KiB
DEFAULT_SEND_TIMEOUT_S = 10.0


class Outbox:
    __slots__ = ("ws", "queue", "bytes", "limit", "task", "sending_since", "dead", "on_dead",
                 "loop")

    def __init__(self, ws, loop, on_dead, limit: int = DEFAULT_LIMIT_BYTES):
        self.ws = ws
        self.loop = loop
        self.queue: deque = deque()  # str: a text frame; bytes: a pong payload
        self.bytes = 0
        self.limit = limit
        self.task: asyncio.Task | None = None
        self.sending_since = 0.0  # loop time the send under way began; 0 when idle
        self.dead = False
        self.on_dead = on_dead  # on_dead(reason): cut the connection

    def post(self, frame) -> bool:
        """Queue a frame; never waits. False when the socket is (now) cut."""
        if self.dead:
            return False
        self.queue.append(frame)
        self.bytes += len(frame)
        if self.bytes > self.limit:
            self.kill("outbox_full")
            return False
        if self.task is None:
            self.task = self.loop.create_task(self._flush())
        return True

    async def _flush(self) -> None:
        ws, queue = self.ws, self.queue
        try:
            while queue and not self.dead:
                frame = queue.popleft()
                self.bytes -= len(frame)
                self.sending_since = self.loop.time()
                if type(frame) is str:
                    await ws.send_str(frame)
                else:
                    await ws.pong(frame)
        except (ConnectionError, RuntimeError):
            self.kill("gone")  # closing under us: its handler cleans up
        finally:
            self.sending_since = 0.0
            self.task = None

    def stuck(self, now: float, timeout: float) -> bool:
        return self.sending_since != 0.0 and now - self.sending_since > timeout

    async def flushed(self, timeout: float) -> bool:
        """Wait (bounded) until everything queued went out; for a close
        that must follow its error frame."""
        task = self.task
        if task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except asyncio.TimeoutError:
            return False
        return not self.dead

    def kill(self, reason: str) -> None:
        if self.dead:
            return
        self.dead = True
        self.queue.clear()
        self.bytes = 0
        self.on_dead(reason)
