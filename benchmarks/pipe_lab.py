"""Pipelined writes through three real Drivers (raft/runtime/driver.py) in
one process, without a browser: the leader's and followers' Python cost
per write around the core (propose, waiters, drain, sends, apply, wake-ups)
with storage in memory and messages handed over by a `post(to, src, text)`
the host supplies (benchmarks/pipe_lab.mjs: Node's setImmediate, one
callback per message, as data channels deliver them). Prints CPU us per
write (all three nodes together, one thread) and the wall rate.
Runs under MicroPython, Pyodide and CPython.
"""
import asyncio

from raft.config import Config
from raft.node import Node
from raft.records import MemoryKV, RecordLog
from raft.runtime.contract import GuardedState
from raft.runtime.driver import Driver

from benchmarks.tally import Tally

IDS = ("n0", "n1", "n2")


class LabTransport:
    def __init__(self, me, post):
        self.me = me
        self.post = post
        self.stats = {}
        self.presence = list(IDS)

    def send(self, peer, text):
        st = self.stats
        st["msgs"] = st.get("msgs", 0) + 1
        st["chars"] = st.get("chars", 0) + len(text)
        self.post(peer, self.me, text)
        return True

    def peers_up(self):
        return [p for p in IDS if p != self.me]


def build(post, clock, register=None):
    """Three Drivers n0..n2; register(node id, on_message) tells the host
    where to deliver what `post` hands it."""
    drivers = {}
    for i, nid in enumerate(IDS):
        log = RecordLog(MemoryKV(), "lab", nid)
        log.load()
        applied = []

        def note(index, command, applied=applied):
            applied.append([index, command])
            if len(applied) > 4000:
                del applied[:2000]
        node = Node(nid, list(IDS), config=Config(),
                    state_machine=GuardedState(Tally(), note), now_ms=clock())
        d = Driver(node, log, LabTransport(nid, post), clock)
        d.on_change = lambda rt: None
        drivers[nid] = d
        if register is not None:
            register(nid, d.on_message)
    return drivers


async def pipelined(driver, writes, inflight, cpu):
    box = {"done": 0, "errors": 0}

    async def client():
        while box["done"] < writes:
            try:
                await driver.propose(1)
            except Exception as e:
                box["errors"] += 1
                box["error"] = repr(e)
                if box["errors"] > 100:
                    return
                continue
            box["done"] += 1

    loop = asyncio.get_event_loop()
    tasks = [loop.create_task(client()) for _ in range(inflight)]
    while any(not t.done() for t in tasks):
        await asyncio.sleep(0.05)
    return box


async def main(post, clock, cpu, wall, writes=20000, inflight=256, batched=False, fine=None,
               register=None):
    """Elect a leader, then `writes` pipelined writes at it (`inflight`
    clients, as pages/bench.py does), or bursts of `inflight` through
    propose_many (batched). cpu() and wall() read seconds; fine() reads ms
    for the phase profile (raft/runtime/timings.py) when given."""
    drivers = build(post, clock, register)
    for nid, d in drivers.items():
        d.start("c%s00000000000"[:13] % nid[1])
    for nid, d in drivers.items():
        for p in d.transport.peers_up():
            d.on_peer(p, True)
    leader = None
    for _ in range(200):
        await asyncio.sleep(0.02)
        for d in drivers.values():
            if d.node.role == "leader" and d.node.commit_index >= 1:
                leader = d
        if leader is not None:
            break
    await leader.propose(1)
    if fine is not None:  # time the phases (raft/runtime/timings.py)
        from raft.runtime.timings import Timings
        for d in drivers.values():
            d.instrument(Timings(fine))
    c0, w0 = cpu(), wall()
    if batched:
        box = {"done": 0, "errors": 0}
        while box["done"] < writes and box["errors"] <= 100:
            try:
                box["done"] += len(await leader.propose_many([1] * inflight))
            except Exception as e:  # e.g. leadership lost on a starved machine
                box["errors"] += 1
                box["error"] = repr(e)
    else:
        box = await pipelined(leader, writes, inflight, cpu)
    c1, w1 = cpu(), wall()
    # let the followers apply the tail
    for _ in range(100):
        if all(d.node.applied_index >= leader.node.commit_index for d in drivers.values()):
            break
        await asyncio.sleep(0.01)
    c2 = cpu()
    for d in drivers.values():
        d.stop()
    n = box["done"]
    prof = None
    if fine is not None:
        prof = dict((nid, d.timings.report(0)["ms"]) for nid, d in drivers.items())
        prof["leader"] = leader.node.id
    return {"profile": prof, "sent": dict((nid, d.transport.stats) for nid, d in drivers.items()),
            "node_stats": leader.node.stats, "driver_stats": leader.stats, "writes": n, "errors": box["errors"], "last_error": box.get("error"),
            "cpu_us_per_write": round((c2 - c0) * 1e6 / n, 1),
            "per_s": round(n / (w1 - w0), 1),
            "leader_readies": leader.stats["readies"],
            "follower_readies": sum(d.stats["readies"] for d in drivers.values() if d is not leader)}
