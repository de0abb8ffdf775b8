"""Plain helpers for the core unit tests (no pytest: they also run under
MicroPython via tests/mpy/run_core_tests.mjs)."""
from raft import Node, Config
from raft.rng import Rng

VOTERS = ["a", "b", "c"]


def config(**kw):
    base = dict(election_min_ms=150, election_max_ms=300, heartbeat_ms=30)
    base.update(kw)
    return Config(**base)


def make_node(nid="a", voters=None, storage=None, **kw):
    return Node(nid, voters or VOTERS, config(**kw), Rng(7).random, None, storage, 0)


class Store:
    """What a driver persists for one node."""

    def __init__(self):
        self.hs = [0, None, 0]
        self.log = []

    def save(self, rd):
        if rd.hard_state is not None:
            self.hs = list(rd.hard_state)
        if rd.entries:
            del self.log[rd.entries_from - 1:]
            self.log.extend(rd.entries)

    def storage(self):
        return (list(self.hs), list(self.log))


def drain(node, store=None):
    """Run the driver loop; return (messages, results, reads) produced."""
    msgs, results, reads = [], [], []
    while node.has_ready():
        rd = node.ready()
        if store is not None:
            store.save(rd)
        msgs.extend(rd.messages)
        node.advance(rd)
        results.extend(rd.results)
        reads.extend(rd.reads)
    return msgs, results, reads


def of_type(msgs, t, dst=None):
    return [m for m in msgs if m[0] == t and (dst is None or m[2] == dst)]


def elect(node, now=1000):
    """Make node leader of a 3-node cluster by timing out and granting votes."""
    node.tick(now)
    msgs = drain(node)[0]
    if node.cfg.pre_vote:
        for p in node.peers:
            node.step(["pvr", p, node.id, node.term + 1, 1])
        msgs = drain(node)[0]
    for p in node.peers:
        node.step(["vr", p, node.id, node.term, 1])
    msgs = drain(node)[0]
    assert node.role == "leader", node.role
    return msgs


def ack_all(leader, msgs):
    """Followers acknowledge every AppendEntries in msgs; returns the new msgs."""
    out = []
    for m in msgs:
        if m[0] == "a":
            leader.step(["ar", m[2], leader.id, m[3], m[4] + len(m[6]), 0, 0, 0])
            out.extend(drain(leader)[0])
    return out


class Net:
    """Instant, lossless network among nodes (for rule tests that need a few
    nodes talking): pump() delivers until quiet; down ids receive nothing."""

    def __init__(self, nodes, now=0):
        self.nodes = dict((n.id, n) for n in nodes)
        self.stores = dict((n.id, Store()) for n in nodes)
        self.down = set()
        self.now = now
        self.results = []          # [node id, result] in order
        self.reads = []

    def add(self, node):
        self.nodes[node.id] = node
        self.stores[node.id] = Store()

    def pump(self, extra=None, limit=100000):
        queue = list(extra or [])
        for nid in sorted(self.nodes):
            queue.extend(self._drain(nid))
        n = 0
        while queue:
            m = queue.pop(0)
            n += 1
            if n > limit:
                raise AssertionError("network did not go quiet")
            node = self.nodes.get(m[2])
            if node is None or m[2] in self.down or m[1] in self.down:
                continue
            node.tick(self.now)
            node.step(m)
            queue.extend(self._drain(m[2]))

    def _drain(self, nid):
        if nid in self.down:
            return []
        msgs, results, reads = drain(self.nodes[nid], self.stores[nid])
        for r in results:
            self.results.append([nid, r])
        for r in reads:
            self.reads.append([nid, r])
        return msgs

    def run(self, until_ms, step_ms=10):
        """Advance the clock, ticking every live node and pumping."""
        while self.now < until_ms:
            self.now += step_ms
            for nid in sorted(self.nodes):
                if nid not in self.down:
                    self.nodes[nid].tick(self.now)
            self.pump()

    def leader(self):
        ls = [n.id for n in self.nodes.values() if n.role == "leader" and n.id not in self.down]
        return ls[0] if len(ls) == 1 else None

    def result(self, cid, seq):
        for nid, r in self.results:
            if r[0] == cid and r[1] == seq:
                return r
        return None
