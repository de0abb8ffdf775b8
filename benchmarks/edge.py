"""CPU per write at a leader's edge, without a browser: the driver's send()
of one Ready's AppendEntries to two followers plus the Ready's persist
(RecordLog over an in-memory store), batches of `batch` entries. Runs under
CPython, MicroPython and Pyodide (benchmarks/edge_rate.mjs runs it in
Node.js): the part of a pipelined write that encoding and storage cost,
apart from the browser's own per-send and per-setItem costs.
"""
from raft.records import MemoryKV, RecordLog
from raft.runtime.driver import Driver



def cpu_clock():
    """CPU seconds of this process, as benchmarks/core.py reads them (that
    module imports the whole simulator, this one only the edge)."""
    import time
    if hasattr(time, "process_time"):
        return time.process_time          # CPython / Pyodide
    import js                             # MicroPython under Node.js
    usage = js.process.cpuUsage

    def node_cpu():
        u = usage()
        return (u.user + u.system) / 1e6
    return node_cpu


class _Sink:
    def __init__(self):
        self.chars = 0

    def send(self, peer, text):
        self.chars += len(text)
        return True


class _Edge:
    """What Driver.send reads of its driver: the transport and the timer hook."""

    def __init__(self):
        self.transport = _Sink()
        self._timed = None


def run(batches=300, batch=64):
    clock = cpu_clock()
    kv = MemoryKV()
    log = RecordLog(kv, "bench", "n0")
    log.load()
    edge = _Edge()
    entries = [[1, "c%07d" % (i % 97), i, ["put", "key%d" % (i % 50), i]]
               for i in range(batches * batch)]
    first = 1
    t0 = clock()
    for b in range(batches):
        ents = entries[b * batch:(b + 1) * batch]
        msgs = [["a", "n0", peer, 1, first - 1, 1 if first > 1 else 0, ents, first - 1]
                for peer in ("n1", "n2")]
        Driver.send(edge, msgs)
        log.save(first, ents, 1, "n0", first - 1)
        first += batch
    dt = clock() - t0
    n = batches * batch
    return {"entries": n, "batch": batch, "cpu_s": round(dt, 4),
            "us_per_entry": round(dt * 1e6 / n, 2), "wire_chars": edge.transport.chars}


if __name__ == "__main__":
    print(run())
