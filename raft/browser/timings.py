"""Instrumentation hook of the member runtime (benchmarks and profiles).

    driver.timings = Timings(performance.now)   # on; None (the default) is off

While set, the driver notes, per Raft message type, when the first message
of that type arrived since `arrived` was last cleared and, with phases=True,
adds up the main-thread time and the calls of each step of its loop
(labels: drain, persist, send, transport_send, advance, on_change, step,
ready, propose, read_index, tick; drain includes persist, send, advance and
on_change). Each timed step costs two clock calls, so small figures are
overstated. Imports nothing.
"""


class Timings:
    def __init__(self, clock, phases=True):
        self.clock = clock  # () -> float ms, fine-grained (performance.now)
        self.phases = phases
        self.ms = {}
        self.calls = {}
        self.arrived = {}  # message type -> clock() of its first arrival

    def run(self, label, fn, *args):
        if not self.phases:
            return fn(*args)
        t0 = self.clock()
        try:
            return fn(*args)
        finally:
            self.ms[label] = self.ms.get(label, 0.0) + self.clock() - t0
            self.calls[label] = self.calls.get(label, 0) + 1

    def saw(self, msg_type):
        if msg_type not in self.arrived:
            self.arrived[msg_type] = self.clock()

    def report(self, wall_ms):
        return {"wall_ms": round(wall_ms, 1),
                "ms": dict((k, round(v, 1)) for k, v in self.ms.items()),
                "calls": dict(self.calls)}
