"""Instrumentation hook of the member runtime (benchmarks and profiles).

    driver.instrument(Timings(performance.now))   # on
    driver.instrument(None)                       # off (the default)

While set, the driver notes, per Raft message type, when the first message
of that type arrived since `arrived` was last cleared and, with phases=True,
adds up the main-thread time and the calls of each step of its loop
(LABELS; drain includes persist, send, advance and on_change, send includes
transport_send). Each timed step costs two clock calls, so small figures are
overstated; with phases=False the loop takes its usual path. Imports nothing.
"""

LABELS = ("drain", "persist", "send", "transport_send", "advance", "on_change", "step",
          "ready", "propose", "read_index", "tick")


class Timings:
    def __init__(self, clock, phases=True):
        self.clock = clock  # () -> float ms, fine-grained (performance.now)
        self.phases = phases
        self.ms = dict((label, 0.0) for label in LABELS)
        self.calls = dict((label, 0) for label in LABELS)
        self.arrived = {}  # message type -> clock() of its first arrival

    def run(self, label, fn, *args):
        if not self.phases:
            return fn(*args)
        t0 = self.clock()
        try:
            return fn(*args)
        finally:
            self.ms[label] += self.clock() - t0
            self.calls[label] += 1

    def saw(self, msg_type):
        if msg_type not in self.arrived:
            self.arrived[msg_type] = self.clock()

    def report(self, wall_ms):
        return {"wall_ms": round(wall_ms, 1),
                "ms": dict((k, round(v, 1)) for k, v in self.ms.items()),
                "calls": dict(self.calls)}
