"""Client sessions: apply each (client id, sequence number) exactly once.

Deterministic on every replica (same committed entries, same decisions), so
a retried command returns the original result wherever it is applied.
"""


def index_in(entries, entry):
    """Position of this very entry object in the batch. Only asked for a
    retry (rare), so appliers keep no per-entry counter on the hot path."""
    for i in range(len(entries)):
        if entries[i] is entry:
            return i
    raise ValueError("entry not in batch")


class Sessions:
    def __init__(self, window=256):
        self.window = window
        # client id -> [floor, {seq: result}]: seqs <= floor were forgotten
        self.clients = {}
        # Retried commands met again (applied once before, skipped now): a
        # counter, so appliers can tell which log entries were duplicates.
        self.retries = 0

    def apply(self, client, seq, command, state_machine):
        """Apply a client command once; returns (error, result)."""
        s = self.clients.get(client)
        if s is None:
            s = [0, {}]
            self.clients[client] = s
        results = s[1]
        if seq in results:
            self.retries += 1
            return None, results[seq]          # retry: original result
        if seq <= s[0]:
            return "session_expired", None     # too old to know: not applied
        result = state_machine.apply(command)
        results[seq] = result
        if len(results) > 2 * self.window:
            self._forget_oldest(s)
        return None, result

    def _forget_oldest(self, s):
        # Amortised: keep the newest `window` results, raise the floor.
        seqs = sorted(s[1])
        cut = seqs[-self.window - 1]
        for q in seqs:
            if q > cut:
                break
            del s[1][q]
        if cut > s[0]:
            s[0] = cut

    def snapshot(self):
        """JSON-able, order-independent form (dicts are unordered on MicroPython)."""
        out = []
        for client in sorted(self.clients):
            floor, results = self.clients[client]
            out.append([client, floor, [[q, results[q]] for q in sorted(results)]])
        return out

    def restore(self, data):
        self.clients = {}
        for client, floor, pairs in data:
            self.clients[client] = [floor, dict((q, r) for q, r in pairs)]
