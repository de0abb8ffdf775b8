"""Who holds each node id of a cluster, and the token that proves it.

The first socket to join with a free id gets a random token in its welcome;
the window keeps it in its origin's storage. While the id is held, and for a
while after the holder left (`member_memory` / `client_memory` seconds), a
join for it must present that token: then the newer socket takes the id (a
reload), otherwise the newcomer is refused. Memory only: a restarted server
starts with every id free.
"""

import hmac
import re
import secrets
from collections import OrderedDict

TOKEN_BYTES = 16
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}")
DEFAULT_MEMBER_MEMORY_S = 24 * 3600.0  # a member window may be closed overnight
DEFAULT_CLIENT_MEMORY_S = 120.0  # client ids are new on every page load
DEFAULT_MAX_REMEMBERED = 100_000  # ids remembered after their holder left, all clusters


class IdRecord:
    __slots__ = ("token", "holder", "released_at")

    def __init__(self, token: str, holder):
        self.token = token
        self.holder = holder  # the socket holding the id, None once it left
        self.released_at = 0.0


class IdBook:
    def __init__(self, *, member_memory: float = DEFAULT_MEMBER_MEMORY_S,
                 client_memory: float = DEFAULT_CLIENT_MEMORY_S,
                 per_cluster: int = 256, total: int = DEFAULT_MAX_REMEMBERED):
        self.memory = {"member": member_memory, "client": client_memory}
        self.per_cluster = per_cluster  # remembered (released) ids per cluster
        self.total = total
        self.records: dict[tuple[str, str], IdRecord] = {}
        # Released ids, oldest first, per cluster and kind (one memory span
        # each, so the oldest is always the first to expire).
        self.released: dict[str, dict[str, OrderedDict]] = {}
        self.released_count = 0

    def claim(self, cluster: str, node: str, kind: str, token, holder, now: float):
        """(outcome, previous holder): "new" (a fresh token), "reclaimed" (the
        token matched; the previous holder, if any, loses the id) or "held"
        (refused: the id is taken or remembered and no valid token came)."""
        key = (cluster, node)
        record = self.records.get(key)
        if record is not None and record.holder is None and \
                now - record.released_at > self.memory[kind]:
            self._forget(cluster, node, kind)
            record = None
        if record is None:
            self.records[key] = IdRecord(secrets.token_urlsafe(TOKEN_BYTES), holder)
            return "new", None
        if not isinstance(token, str) or not hmac.compare_digest(token, record.token):
            return "held", None
        previous = record.holder
        if previous is None:
            self._unrelease(cluster, node, kind)
        record.holder = holder
        return "reclaimed", previous

    def token(self, cluster: str, node: str) -> str:
        return self.records[(cluster, node)].token

    def release(self, cluster: str, node: str, kind: str, holder, now: float) -> None:
        """`holder` left: remember the id (only if it still held it)."""
        record = self.records.get((cluster, node))
        if record is None or record.holder is not holder:
            return
        record.holder = None
        record.released_at = now
        queue = self.released.setdefault(cluster, {}).setdefault(kind, OrderedDict())
        queue[node] = None
        self.released_count += 1
        if self.remembered(cluster) > self.per_cluster:
            self._evict_oldest(cluster)
        if self.released_count > self.total:
            self._evict_largest()

    def remembered(self, cluster: str) -> int:
        """Ids of `cluster` remembered after their holders left."""
        return sum(len(q) for q in self.released.get(cluster, {}).values())

    def expire(self, now: float) -> None:
        for cluster in list(self.released):
            for kind, queue in list(self.released[cluster].items()):
                span = self.memory[kind]
                while queue:
                    node = next(iter(queue))
                    if now - self.records[(cluster, node)].released_at <= span:
                        break
                    self._forget(cluster, node, kind)

    def _unrelease(self, cluster: str, node: str, kind: str) -> None:
        queues = self.released[cluster]
        del queues[kind][node]
        self.released_count -= 1
        if not queues[kind]:
            del queues[kind]
            if not queues:
                del self.released[cluster]

    def _forget(self, cluster: str, node: str, kind: str) -> None:
        self._unrelease(cluster, node, kind)
        del self.records[(cluster, node)]

    def _evict_oldest(self, cluster: str) -> None:
        queues = self.released[cluster]
        kind, node = min(((k, next(iter(q))) for k, q in queues.items()),
                         key=lambda kn: self.records[(cluster, kn[1])].released_at)
        self._forget(cluster, node, kind)

    def _evict_largest(self) -> None:
        """Over the total: take from the cluster that remembers the most (an
        address churning ids fills its own cluster first), a tenth at a time."""
        while self.released_count > self.total * 0.9:
            cluster = max(self.released, key=self.remembered)
            for _ in range(self.remembered(cluster) // 2 + 1):
                self._evict_oldest(cluster)
