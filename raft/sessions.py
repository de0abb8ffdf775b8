"""Client sessions: apply each (client id, sequence number) exactly once
(Raft thesis §6.3).

Deterministic on every replica (same committed entries, same decisions), so
a retried command returns the original result wherever it is applied.

The table is bounded: it keeps the results of the newest `window` sequence
numbers per client and at most `max_clients` clients. Past that the least
recently used client (by the log index of its last command; ties by id) is
expired. Once any client has expired, a command from a client the table does
not know is applied only if its seq is 1 (a new client); otherwise it is
refused with "session_expired", never applied a second time.
"""


def apply_entries(sessions, first, entries, state_machine, pending, results):
    """Apply committed log entries first, first + 1, ... through the session
    table: commands once per (client, seq), configuration entries recorded
    as their change's outcome, no-ops skipped. The one apply loop of members
    (raft/node.py) and client windows (raft/client.py), so both decide alike.
    pending: {(client, seq): ...} of requests waiting here; each that applies
    is removed and [client, seq, error, result] appended to `results`.
    A retry met again (in the log twice) is applied once, at its first index:
    a state machine that wants to know what ran where takes apply_entry."""
    # The state machine may take the entry's place too: apply_entry(index,
    # term, command) (e.g. to stamp revisions); else apply(command).
    by_entry = getattr(state_machine, "apply_entry", None) is not None
    clients = sessions.clients
    most = 2 * sessions.window
    index = first - 1
    for e in entries:
        index += 1
        client = e[1]
        if client is None:
            conf = e[3]
            if conf is None:
                continue              # a leader's no-op
            # A configuration entry (in effect since appended): its outcome.
            by = conf["by"]
            client = by[0]
            seq = by[1]
            err = None
            result = {"voters": conf["voters"], "learners": conf["learners"]}
            sessions.record(client, seq, result, index)
        else:
            seq = e[2]
            s = clients.get(client)
            if s is None or seq in s[1] or seq <= s[0]:
                # a new client, a retry, a forgotten seq: Sessions.apply decides
                err, result = sessions.apply(client, seq, e[3], state_machine, index, e[0],
                                             by_entry)
            else:
                # The hot path (a known client's next command), Sessions.apply inlined.
                s[2] = index
                if by_entry:
                    result = state_machine.apply_entry(index, e[0], e[3])
                else:
                    result = state_machine.apply(e[3])
                done = s[1]
                done[seq] = result
                if len(done) > most:
                    sessions._forget_oldest(s)
                err = None
        if pending:
            key = (client, seq)
            if key in pending:
                del pending[key]
                results.append([client, seq, err, result])


class Sessions:
    def __init__(self, window=256, max_clients=1024):
        self.window = window
        self.max_clients = max_clients
        # client id -> [floor, {seq: result}, last index]: seqs <= floor were
        # forgotten; last index: where its latest command was applied (LRU)
        self.clients = {}
        self.expired = 0          # clients expired so far

    def apply(self, client, seq, command, state_machine, index=0, term=0, by_entry=False):
        """Apply a client command once (the entry at `index`, of `term`);
        returns (error, result). by_entry: call state_machine.apply_entry(index,
        term, command) rather than apply(command)."""
        s = self.clients.get(client)
        if s is None:
            if self.expired and seq > 1:
                return "session_expired", None   # its session may have been expired
            s = self._open(client)
        s[2] = index
        results = s[1]
        if seq in results:
            return None, results[seq]          # retry: original result
        if seq <= s[0]:
            return "session_expired", None     # too old to know: not applied
        if by_entry:
            result = state_machine.apply_entry(index, term, command)
        else:
            result = state_machine.apply(command)
        results[seq] = result
        if len(results) > 2 * self.window:
            self._forget_oldest(s)
        return None, result

    def knows(self, client):
        """False once the client's session expired (or before its first
        command): after a session_expired answer, True means only that seq
        was older than the client's window."""
        return client in self.clients

    def record(self, client, seq, result, index=0):
        """Note the outcome of a request that is not a state machine command
        (a membership change, applied when appended): answered from here on."""
        s = self.clients.get(client)
        if s is None:
            s = self._open(client)
        s[2] = index
        if seq > s[0] and seq not in s[1]:
            s[1][seq] = result
            if len(s[1]) > 2 * self.window:
                self._forget_oldest(s)

    def outcome(self, client, seq):
        """[error, result] this table gives (client, seq) if it came again,
        or None when it would be applied as new."""
        s = self.clients.get(client)
        if s is None:
            return ["session_expired", None] if self.expired and seq > 1 else None
        if seq in s[1]:
            return [None, s[1][seq]]
        if seq <= s[0]:
            return ["session_expired", None]
        return None

    def _open(self, client):
        s = [0, {}, 0]
        if len(self.clients) >= self.max_clients:
            self._expire_least_recently_used()
        self.clients[client] = s
        return s

    def _expire_least_recently_used(self):
        old = None
        for c in self.clients:
            last = self.clients[c][2]
            if old is None or last < self.clients[old][2] or (
                    last == self.clients[old][2] and c < old):
                old = c
        del self.clients[old]
        self.expired += 1

    def _forget_oldest(self, s):
        # Amortised: keep the newest `window` results, raise the floor. A new
        # dict rather than deleting the oldest in place: on MicroPython
        # every deletion leaves a tombstone that later inserts and lookups
        # probe past (the whole apply of an entry costs about half as much).
        done = s[1]
        seqs = sorted(done)
        cut = seqs[-self.window - 1]
        keep = {}
        for q in seqs[len(seqs) - self.window:]:
            keep[q] = done[q]
        s[1] = keep
        if cut > s[0]:
            s[0] = cut

    def snapshot(self):
        """JSON-able, order-independent form (dicts are unordered on MicroPython)."""
        rows = []
        for client in sorted(self.clients):
            floor, results, last = self.clients[client]
            rows.append([client, floor, [[q, results[q]] for q in sorted(results)], last])
        return {"window": self.window, "max_clients": self.max_clients,
                "expired": self.expired, "clients": rows}

    def restore(self, data):
        """From snapshot(); also the older form, a bare list of rows."""
        if type(data) is dict:
            self.window = data["window"]
            self.max_clients = data["max_clients"]
            self.expired = data["expired"]
            data = data["clients"]
        self.clients = {}
        for row in data:
            self.clients[row[0]] = [row[1], dict((q, r) for q, r in row[2]),
                                    row[3] if len(row) > 3 else 0]


def sessions_problem(data):
    """None if data is a session table as snapshot() makes it (or the older
    bare list), else why not: checked before a received snapshot is installed."""
    if type(data) is dict:
        for k in ("window", "max_clients", "expired"):
            if type(data.get(k)) is not int or data[k] < 0:
                return "bad session table " + k
        if data["window"] < 1 or data["max_clients"] < 1:
            return "bad session table limits"
        data = data.get("clients")
    if type(data) is not list:
        return "session table is not a list"
    for row in data:
        if (type(row) is not list or len(row) not in (3, 4) or type(row[0]) is not str or
                type(row[1]) is not int or type(row[2]) is not list):
            return "bad session table row"
        for pair in row[2]:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not int:
                return "bad session result"
    return None
