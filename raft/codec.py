"""The one wire codec: compact JSON lists with short type tags and a protocol
version, and validation of every field's type and range.

Wire form: [VERSION, type, src, dst, term, ...fields]; decoded form (what
Node.step takes): the same list without the version. Each message type is
built by one function below (its fields named as the handlers unpack them).
"""
import json

from .membership import OPS, config_problem

VERSION = 1
MAX_INT = 9007199254740991          # 2**53 - 1: exact in JS numbers too
MAX_ID = 64                         # node id length
MAX_CLIENT = 128                    # client id length
MAX_ENTRIES = 10000                 # per AppendEntries (far above any batch)
MAX_TEXT = 65536                    # one encoded message (data-channel limit)
MAX_DEPTH = 32                      # nesting of a command

ERRORS = ("no_leader", "leadership_lost", "too_many_pending", "too_large",
          "timeout", "session_expired", "invalid")
# Outcomes of a membership change besides ERRORS.
CHANGE_ERRORS = ERRORS + ("conf_pending", "unsafe")
MAX_REASON = 512                    # chars of a human-readable refusal reason

# type tag -> number of fields after [type, src, dst, term]
FIELD_COUNT = {
    "pv": 2, "v": 2, "pvr": 1, "vr": 1,
    "a": 4, "ar": 4, "h": 2, "hr": 1,
    "p": 3, "pr": 4, "r": 1, "rr": 3,
    "s": 5, "sr": 4,
    "m": 4, "mr": 4,
}

SEP = (",", ":")                    # compact JSON, as on the wire and in storage
MSG_OVERHEAD = 200                  # bytes of an AppendEntries besides its entries (ids, ints)


def utf8_len(text):
    # Bytes, not characters: MicroPython's json.dumps does not escape non-ASCII.
    return len(text.encode())


class DecodeError(ValueError):
    pass


def compact(obj):
    """Compact JSON text: the one form the wire and storage use."""
    return json.dumps(obj, separators=SEP)


def encode(msg):
    """Message list -> compact JSON text (protocol version first)."""
    return json.dumps([VERSION] + msg, separators=SEP)


# ---------------------------------------------------------------- message builders
# Each message type is built here and nowhere else (raft/API.md lists the fields).

def vote_request(kind, src, dst, term, last_index, last_term):
    """kind "pv" (PreVote: term is the one we would stand for) or "v"."""
    return [kind, src, dst, term, last_index, last_term]


def vote_reply(kind, src, dst, term, granted):
    """kind "pvr" or "vr"; granted 0 or 1."""
    return [kind, src, dst, term, granted]


def append_request(src, dst, term, prev_index, prev_term, entries, commit):
    return ["a", src, dst, term, prev_index, prev_term, entries, commit]


def append_reply(src, dst, term, index, reject, hint_index, hint_term):
    """index: last index now matching (or the rejected prev_index); the hint:
    our last index whose term is <= the leader's prev_term, and that term."""
    return ["ar", src, dst, term, index, reject, hint_index, hint_term]


def heartbeat(src, dst, term, commit, read_round):
    return ["h", src, dst, term, commit, read_round]


def heartbeat_reply(src, dst, term, read_round):
    return ["hr", src, dst, term, read_round]


def proposal(src, dst, term, client_id, seq, command):
    return ["p", src, dst, term, client_id, seq, command]


def proposal_failure(src, dst, term, client_id, seq, error, leader_id):
    return ["pr", src, dst, term, client_id, seq, error, leader_id]


def read_request(src, dst, term, read_id):
    return ["r", src, dst, term, read_id]


def read_reply(src, dst, term, read_id, index, error):
    return ["rr", src, dst, term, read_id, index, error]


def snapshot_chunk(src, dst, term, snap_index, snap_term, offset, text, done):
    return ["s", src, dst, term, snap_index, snap_term, offset, text, done]


def snapshot_reply(src, dst, term, snap_index, answered, want, done):
    """answered: offset of the chunk this replies to; want: next offset."""
    return ["sr", src, dst, term, snap_index, answered, want, done]


def membership_request(src, dst, term, client_id, seq, op, target):
    return ["m", src, dst, term, client_id, seq, op, target]


def membership_reply(src, dst, term, client_id, seq, error, value):
    return ["mr", src, dst, term, client_id, seq, error, value]


class IncomingSnapshot:
    """A snapshot's text being received in chunks, in order (a follower's
    InstallSnapshot, a client window's stream)."""

    def __init__(self, index, term):
        self.index = index
        self.term = term
        self.parts = []
        self.size = 0             # characters received: the next offset wanted


def text_piece(text, start, budget):
    """The piece of `text` from `start` whose encoding as a JSON string
    (quotes and backslashes escaped, UTF-8) takes at most `budget` bytes:
    the one adaptive cutter for snapshot chunks (members' InstallSnapshot
    and client windows' stream). Plain JSON text, no base64: MicroPython's
    binascii is slow pure Python."""
    n = budget // 2
    while True:
        part = text[start:start + n]
        size = utf8_len(json.dumps(part))
        if size <= budget or n <= 1:
            return part
        n = n * budget // size - 16 if n * budget // size - 16 < n else n // 2
        if n < 1:
            n = 1


def decode(text):
    """JSON text -> validated message list; raises DecodeError."""
    if type(text) is not str:
        raise DecodeError("not text")
    if len(text) > MAX_TEXT:
        raise DecodeError("message too long")
    try:
        raw = json.loads(text)
    except Exception:
        raise DecodeError("malformed JSON")
    if type(raw) is not list or not raw:
        raise DecodeError("not a list")
    if raw[0] != VERSION or type(raw[0]) is not int:
        raise DecodeError("unsupported protocol version")
    msg = raw[1:]
    err = problem(msg, True)
    if err is not None:
        raise DecodeError(err)
    return msg


def _is_uint(x):
    return type(x) is int and 0 <= x <= MAX_INT


def _is_id(x):
    return type(x) is str and 0 < len(x) <= MAX_ID


def json_size(x, depth):
    """Rough encoded size of x if it is made only of JSON types, else -1
    (for values that did not come from json.loads; NaN/inf are not JSON)."""
    t = type(x)
    if t is str:
        return len(x) + 2
    if t is int:
        return 20 if -MAX_INT <= x <= MAX_INT else len(str(x))
    if x is None or t is bool:
        return 5
    if t is float:
        return 24 if x == x and x not in (float("inf"), float("-inf")) else -1
    if depth >= MAX_DEPTH:
        return -1
    total = 2
    if t is list:
        for y in x:
            ty = type(y)
            if ty is str:              # fast path: flat commands like ["put", k, v]
                total += len(y) + 3
            elif ty is int and -MAX_INT <= y <= MAX_INT:
                total += 21
            else:
                n = json_size(y, depth + 1)
                if n < 0:
                    return -1
                total += n + 1
        return total
    if t is dict:
        for k in x:
            if type(k) is not str:
                return -1
            n = json_size(x[k], depth + 1)
            if n < 0:
                return -1
            total += len(k) + n + 4
        return total
    return -1


def _is_json(x, depth):
    return json_size(x, depth) >= 0


def client_problem(client, seq):
    if type(client) is not str or not 0 < len(client) <= MAX_CLIENT:
        return "bad client id"
    if type(seq) is not int or not 1 <= seq <= MAX_INT:
        return "bad sequence number"
    return None


def entries_problem(ents, prev_term, term, from_json, max_entries=MAX_ENTRIES):
    if type(ents) is not list or (max_entries is not None and len(ents) > max_entries):
        return "bad entries"
    last_term = prev_term
    for e in ents:
        if type(e) is not list or len(e) != 4:
            return "bad entry"
        et = e[0]
        if type(et) is not int or et < last_term or et > term:
            return "bad entry term"
        last_term = et
        if e[1] is None:
            if e[2] != 0 or type(e[2]) is not int:
                return "bad no-op entry"
            if e[3] is not None:
                # a configuration entry (raft/membership.py)
                err = config_problem(e[3], True)
                if err is not None:
                    return "bad configuration entry: " + err
        else:
            # client_problem inlined: this loop runs once per replicated entry
            cl = e[1]
            if type(cl) is not str or not 0 < len(cl) <= MAX_CLIENT:
                return "bad client id"
            sq = e[2]
            if type(sq) is not int or not 1 <= sq <= MAX_INT:
                return "bad sequence number"
            if not from_json and json_size(e[3], 0) < 0:
                return "command is not JSON"
    return None


def problem(msg, from_json=False):
    """None if msg is a well-formed decoded message, else why not.
    from_json: msg came from json.loads, so commands need no type walk."""
    if type(msg) is not list or len(msg) < 4:
        return "not a message list"
    t = msg[0]
    if type(t) is not str:
        return "bad type tag"
    n = FIELD_COUNT.get(t)
    if n is None:
        return "unknown type tag"
    if len(msg) != 4 + n:
        return "wrong field count"
    if not _is_id(msg[1]) or not _is_id(msg[2]):
        return "bad node id"
    term = msg[3]
    if not _is_uint(term):
        return "bad term"
    if t == "a":
        if not _is_uint(msg[4]) or not _is_uint(msg[5]) or not _is_uint(msg[7]):
            return "bad index"
        if msg[5] > term:
            return "prev term above term"
        return entries_problem(msg[6], msg[5], term, from_json)
    if t == "ar":
        if not _is_uint(msg[4]) or not _is_uint(msg[6]) or not _is_uint(msg[7]):
            return "bad index"
        if msg[5] != 0 and msg[5] != 1 or type(msg[5]) is not int:
            return "bad reject flag"
        return None
    if t == "v" or t == "pv":
        if not _is_uint(msg[4]) or not _is_uint(msg[5]):
            return "bad index"
        if msg[5] > term:
            return "last term above term"
        return None
    if t == "vr" or t == "pvr":
        if type(msg[4]) is not int or msg[4] not in (0, 1):
            return "bad granted flag"
        return None
    if t == "h":
        if not _is_uint(msg[4]) or not _is_uint(msg[5]):
            return "bad index"
        return None
    if t == "hr":
        return None if _is_uint(msg[4]) else "bad read round"
    if t == "s":
        # InstallSnapshot chunk: snap_index, snap_term, offset, text, done
        if not _is_uint(msg[4]) or not _is_uint(msg[5]) or not _is_uint(msg[6]):
            return "bad index"
        if msg[5] > term or msg[4] < 1:
            return "bad snapshot index or term"
        if type(msg[7]) is not str or len(msg[7]) > MAX_TEXT:
            return "bad snapshot chunk"
        if type(msg[8]) is not int or msg[8] not in (0, 1):
            return "bad done flag"
        return None
    if t == "sr":
        # snapshot chunk ack: snap_index, offset of the chunk answered, next offset wanted, done
        if not _is_uint(msg[4]) or not _is_uint(msg[5]) or not _is_uint(msg[6]):
            return "bad index"
        if type(msg[7]) is not int or msg[7] not in (0, 1):
            return "bad done flag"
        return None
    if t == "p":
        err = client_problem(msg[4], msg[5])
        if err is not None:
            return err
        if not from_json and not _is_json(msg[6], 0):
            return "command is not JSON"
        return None
    if t == "pr":
        err = client_problem(msg[4], msg[5])
        if err is not None:
            return err
        if msg[6] not in ERRORS or type(msg[6]) is not str:
            return "unknown error code"
        if msg[7] is not None and not _is_id(msg[7]):
            return "bad leader id"
        return None
    if t == "m":
        # forwarded membership change: client_id, seq, op, target
        err = client_problem(msg[4], msg[5])
        if err is not None:
            return err
        if type(msg[6]) is not str or msg[6] not in OPS:
            return "unknown membership operation"
        return None if _is_id(msg[7]) else "bad target id"
    if t == "mr":
        # its outcome: client_id, seq, error, value (reason / leader id / config)
        err = client_problem(msg[4], msg[5])
        if err is not None:
            return err
        e = msg[6]
        v = msg[7]
        if e is None:
            return config_problem(v, False)
        if type(e) is not str or e not in CHANGE_ERRORS:
            return "unknown error code"
        if v is not None and (type(v) is not str or len(v) > MAX_REASON):
            return "bad reason"
        return None
    ctx = msg[4]  # "r" and "rr"
    if not (type(ctx) is str and len(ctx) <= MAX_CLIENT) and not _is_uint(ctx):
        return "bad read context"
    if t == "rr":
        if not _is_uint(msg[5]):
            return "bad index"
        if msg[6] is not None and (type(msg[6]) is not str or msg[6] not in ERRORS):
            return "unknown error code"
    return None
