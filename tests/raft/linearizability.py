"""A linearizability checker for key/value histories (Wing & Gong's search
with Lowe's memoisation, as in Porcupine and Knossos).

An operation is [op, key, args, output, call, ret]: op one of "put", "get",
"del", "cas" (the raft.kv commands, with their results as output) or "read"
(a ReadIndex read: output is the value read); call and ret are times. An
operation whose outcome is unknown (the client gave up, timed out, or crashed
with it in flight) has ret None and output None: it may have taken effect at
any point after its call, or never.

Key/value histories are checked one key at a time (linearizability is local:
the history is linearizable iff each key's is). check(history) returns None
or a Violation naming the key and the operations that cannot be ordered.
"""

INF = float("inf")


class Violation(AssertionError):
    pass


def step(state, op, args, output, known):
    """The key's next state if `op` with `output` can happen in `state`, else
    a marker. state: the value, None when the key is absent."""
    if op == "put":
        return args[0] if not known or output == state else _NO
    if op == "get" or op == "read":
        return state if not known or output == state else _NO
    if op == "del":
        return None if not known or output == (state is not None) else _NO
    if op == "cas":
        old, new = args
        if state == old:
            return new if not known or output == [True, new] else _NO
        return state if not known or output == [False, state] else _NO
    raise ValueError("unknown operation %r" % (op,))


_NO = object()


def check_key(ops, max_steps=2000000):
    """True if the operations on one key are linearizable (raises when the
    search grows past max_steps: a checker that cannot answer says so)."""
    # Events: (time, 0 = call / 1 = return, op). At one instant calls sort
    # first, so an op returning at t counts as concurrent with one called at t.
    events = []
    for i in range(len(ops)):
        o = ops[i]
        events.append((o[4], 0, i))
        events.append((INF if o[5] is None else o[5], 1, i))
    events.sort()
    n = len(events)
    ret_of = {}
    for k in range(n):
        if events[k][1] == 1:
            ret_of[events[k][2]] = k
    # A doubly linked list of the events, head sentinel HEAD; linearizing an
    # op lifts its call and return out of it (dancing links).
    HEAD = n
    nxt = [k + 1 for k in range(n)] + [0 if n else None]
    if n:
        nxt[n - 1] = None
    prv = [k - 1 for k in range(n)] + [None]
    if n:
        prv[0] = HEAD

    def lift(k):
        p, q = prv[k], nxt[k]
        nxt[p] = q
        if q is not None:
            prv[q] = p

    def unlift(k):
        p, q = prv[k], nxt[k]
        nxt[p] = k
        if q is not None:
            prv[q] = k

    state = None
    linearized = 0
    cache = set()
    stack = []
    entry = nxt[HEAD]
    steps = 0
    while nxt[HEAD] is not None:
        steps += 1
        if steps > max_steps:
            raise RuntimeError("linearizability search exceeded %d steps" % max_steps)
        kind, i = events[entry][1], events[entry][2]
        if kind == 0:
            o = ops[i]
            new = step(state, o[0], o[2], o[3], o[5] is not None)
            if new is not _NO:
                bits = linearized | (1 << i)
                memo = (bits, repr(new))
                if memo not in cache:
                    cache.add(memo)
                    stack.append((entry, state, linearized))
                    state, linearized = new, bits
                    lift(entry)
                    lift(ret_of[i])
                    entry = nxt[HEAD]
                    continue
            entry = nxt[entry]
        else:
            # The return of an op not linearized yet: undo the last choice.
            if not stack:
                return False
            entry, state, linearized = stack.pop()
            unlift(ret_of[events[entry][2]])
            unlift(entry)
            entry = nxt[entry]
    return True


def check(history):
    """None if the history is linearizable, else a Violation."""
    by_key = {}
    for o in history:
        by_key.setdefault(o[1], []).append(o)
    for key in sorted(by_key):
        ops = by_key[key]
        if not check_key(ops):
            return Violation("history of key %r is not linearizable (%d operations):\n%s"
                             % (key, len(ops), "\n".join(_show(o) for o in sorted(
                                 ops, key=lambda o: o[4]))))
    return None


def _show(o):
    ret = "?" if o[5] is None else o[5]
    out = "?" if o[5] is None else repr(o[3])
    return "  [%s, %s] %s%r -> %s" % (o[4], ret, o[0], tuple(o[2]), out)
