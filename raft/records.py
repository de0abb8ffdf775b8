"""Durable Raft records over a tiny key/value store (localStorage in the browser).

Pure Python for CPython, MicroPython and Pyodide: the browser binding
(raft/browser/storage.py) only supplies a key/value object with
get(key) -> str | None, set(key, value), remove(key), keys() -> list, and
raises StorageFull when the quota is exhausted.

Key layout, one namespace per cluster and node so same-origin windows of
different clusters or nodes can never clash:

    wraft:<cluster>:<node>:hard          term, vote, commit
    wraft:<cluster>:<node>:log:<first>   a batch of entries starting at <first>
    wraft:<cluster>:<node>:snap          snapshot (index, term, app state)

Each value is "<crc32 as 8 hex digits><json body>". Log records hold one
persist batch (one setItem per Ready, not one per entry). Entries are opaque
JSON values to this module; their index is implied by position. A snapshot
covers a prefix of the log, after which the log records it covers can be
removed, so compaction needs no change to the layout.
"""

import binascii
import json

FORMAT = 1
# Keep a single record well under what one setItem handles comfortably; a
# bigger batch is split over several consecutive records.
MAX_RECORD_CHARS = 256 * 1024


class StorageFull(Exception):
    """The key/value store refused a write (browser quota exhausted)."""


class DamagedStorage(Exception):
    """Stored state that may hold committed data fails its checks."""


class RecordCorrupt(Exception):
    """One record fails its checksum or shape check."""


def _escape(part):
    # ":" separates key fields and "%" escapes, so neither may appear raw.
    return str(part).replace("%", "%25").replace(":", "%3A")


def namespace(cluster, node):
    return "wraft:" + _escape(cluster) + ":" + _escape(node) + ":"


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def _crc(body):
    return binascii.crc32(body.encode()) & 0xFFFFFFFF


def seal(obj):
    """Encode obj as JSON prefixed by its crc32, so damage is seen on load."""
    body = _dumps(obj)
    return "%08x" % _crc(body) + body


def unseal(text):
    if not isinstance(text, str) or len(text) < 9:
        raise RecordCorrupt("record too short")
    try:
        want = int(text[:8], 16)
    except ValueError:
        raise RecordCorrupt("record has no checksum")
    body = text[8:]
    if _crc(body) != want:
        raise RecordCorrupt("checksum mismatch")
    try:
        return json.loads(body)
    except ValueError:
        raise RecordCorrupt("record body is not JSON")


def encode_hard_state(term, vote, commit):
    return seal({"v": FORMAT, "term": term, "vote": vote, "commit": commit})


def decode_hard_state(text):
    obj = unseal(text)
    if not isinstance(obj, dict) or obj.get("v") != FORMAT:
        raise RecordCorrupt("hard state has an unknown format")
    term, vote, commit = obj.get("term"), obj.get("vote"), obj.get("commit")
    if not _is_count(term) or not _is_count(commit):
        raise RecordCorrupt("hard state term/commit are not counts")
    if vote is not None and not (isinstance(vote, str) or _is_count(vote)):
        raise RecordCorrupt("hard state vote is not a node id")
    return term, vote, commit


def encode_log_record(first, entries):
    return seal({"v": FORMAT, "f": first, "e": list(entries)})


def decode_log_record(text, first):
    """Decode the record stored under log key `first`; returns its entries."""
    obj = unseal(text)
    if not isinstance(obj, dict) or obj.get("v") != FORMAT:
        raise RecordCorrupt("log record has an unknown format")
    # The index inside the record must match its key: catches a value copied
    # under the wrong key as well as bit rot.
    if obj.get("f") != first:
        raise RecordCorrupt("log record index does not match its key")
    entries = obj.get("e")
    if not isinstance(entries, list) or not entries:
        raise RecordCorrupt("log record holds no entries")
    return entries


def encode_snapshot(index, term, state):
    return seal({"v": FORMAT, "i": index, "t": term, "s": state})


def decode_snapshot(text):
    obj = unseal(text)
    if not isinstance(obj, dict) or obj.get("v") != FORMAT:
        raise RecordCorrupt("snapshot has an unknown format")
    if not _is_count(obj.get("i")) or not _is_count(obj.get("t")):
        raise RecordCorrupt("snapshot index/term are not counts")
    return obj["i"], obj["t"], obj.get("s")


def _is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def split_batch(entries, limit):
    """Cut a batch into runs whose JSON stays under `limit` characters."""
    runs, run, size = [], [], 0
    for e in entries:
        n = len(_dumps(e)) + 1
        if run and size + n > limit:
            runs.append(run)
            run, size = [], 0
        run.append(e)
        size += n
    if run:
        runs.append(run)
    return runs


class MemoryKV:
    """A dict-backed key/value store with an optional quota in characters.

    Stands in for localStorage in CPython tests; the quota counts key and value
    characters like browsers do, and a write over quota changes nothing.
    """

    def __init__(self, quota=None):
        self.data = {}
        self.quota = quota

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        if self.quota is not None:
            used = self.used() - len(self.data.get(key, "")) - (len(key) if key in self.data else 0)
            if used + len(key) + len(value) > self.quota:
                raise StorageFull("quota of %d characters exceeded" % self.quota)
        self.data[key] = value

    def remove(self, key):
        self.data.pop(key, None)

    def keys(self):
        return list(self.data)

    def used(self):
        return sum(len(k) + len(v) for k, v in self.data.items())


class Restored:
    """What a node finds on disk at start: hard state, snapshot, log."""

    def __init__(self):
        self.term = 0
        self.vote = None
        self.commit = 0
        self.snapshot = None  # (index, term, state) or None
        self.first_index = 1  # index of entries[0]
        self.entries = []
        self.repaired = None  # message when an uncommitted damaged tail was dropped

    @property
    def last_index(self):
        return self.first_index + len(self.entries) - 1


class RecordLog:
    """The Raft log and hard state of one node, kept in a key/value store.

    save() writes entries before the hard state, so a hard state never claims
    a commit index beyond what is stored. The caller sends no message that
    depends on a save until save() has returned; on StorageFull it must stop
    accepting writes (what is on disk stays a consistent earlier state).
    """

    def __init__(self, kv, cluster, node):
        self.kv = kv
        self.ns = namespace(cluster, node)
        self.hard_key = self.ns + "hard"
        self.snap_key = self.ns + "snap"
        self.log_prefix = self.ns + "log:"
        self._runs = []  # sorted [first, last] of each stored log record
        self._hard = None

    def log_key(self, first):
        return self.log_prefix + str(first)

    def _stored_firsts(self):
        firsts = []
        n = len(self.log_prefix)
        for key in self.kv.keys():
            if key.startswith(self.log_prefix):
                tail = key[n:]
                if tail.isdigit():
                    firsts.append(int(tail))
        firsts.sort()
        return firsts

    def load(self):
        """Read and check everything; repair an uncommitted tail or refuse.

        Raises DamagedStorage when committed data (or the hard state or the
        snapshot) fails its checks: starting from it could break Raft safety.
        """
        r = Restored()
        text = self.kv.get(self.hard_key)
        if text is not None:
            try:
                r.term, r.vote, r.commit = decode_hard_state(text)
            except RecordCorrupt as e:
                raise DamagedStorage("term/vote record %s is damaged (%s); refusing to start"
                                     % (self.hard_key, e))
            self._hard = (r.term, r.vote, r.commit)
        text = self.kv.get(self.snap_key)
        if text is not None:
            try:
                r.snapshot = decode_snapshot(text)
            except RecordCorrupt as e:
                raise DamagedStorage("snapshot record %s is damaged (%s); refusing to start"
                                     % (self.snap_key, e))
            r.first_index = r.snapshot[0] + 1
        expected = r.first_index
        runs = []
        damage_at = None
        reason = None
        firsts = self._stored_firsts()
        for first in firsts:
            try:
                entries = decode_log_record(self.kv.get(self.log_key(first)), first)
            except RecordCorrupt as e:
                damage_at, reason = first, "record %s: %s" % (self.log_key(first), e)
                break
            last = first + len(entries) - 1
            if last < r.first_index:
                continue  # wholly covered by the snapshot; compaction left it behind
            if first > expected:
                damage_at, reason = expected, "entries %d..%d are missing" % (expected, first - 1)
                break
            if first < expected and first >= r.first_index:
                damage_at, reason = first, "record %s overlaps the one before" % self.log_key(first)
                break
            r.entries.extend(entries[expected - first:])
            runs.append([first, last])
            expected = last + 1
        if damage_at is not None:
            if damage_at <= r.commit:
                raise DamagedStorage(
                    "committed log data is damaged at index %d (%s); commit index is %d; "
                    "refusing to start" % (damage_at, reason, r.commit))
            keep = damage_at - 1
            del r.entries[max(0, keep - r.first_index + 1):]
            self._drop_after(keep, firsts, runs)
            r.repaired = ("dropped damaged uncommitted log tail from index %d (%s)"
                          % (damage_at, reason))
        if r.commit > r.last_index:
            raise DamagedStorage(
                "commit index %d is beyond the stored log (last index %d); refusing to start"
                % (r.commit, r.last_index))
        self._runs = runs
        return r

    def _drop_after(self, keep, firsts, runs):
        # Remove every record starting after `keep`; a record straddling it is
        # cut (it is whole, so rewriting it shorter only needs one setItem).
        for first in firsts:
            if first > keep:
                self.kv.remove(self.log_key(first))
        while runs and runs[-1][0] > keep:
            runs.pop()
        if runs and runs[-1][1] > keep:
            first = runs[-1][0]
            entries = decode_log_record(self.kv.get(self.log_key(first)), first)
            self.kv.set(self.log_key(first), encode_log_record(first, entries[:keep - first + 1]))
            runs[-1][1] = keep

    @property
    def last_index(self):
        return self._runs[-1][1] if self._runs else 0

    def save(self, first=None, entries=None, term=None, vote=None, commit=None):
        """Persist a Ready: entries from index `first` (replacing any stored
        entries at or after it), then the hard state if it changed."""
        if entries:
            self.append(first, entries)
        if term is not None:
            self.set_hard_state(term, vote, commit)

    def append(self, first, entries):
        """Store entries[0] at index `first`, dropping the stored tail from there."""
        entries = list(entries)
        if not entries:
            return
        runs = self._runs
        # Runs are sorted and contiguous: walk back from the tail to the first
        # run that reaches `first` (a plain append at the end touches none).
        i = len(runs)
        while i > 0 and runs[i - 1][1] >= first:
            i -= 1
        start = first
        # A record straddling `first` is rewritten with its kept head merged
        # into the new batch, so the result is again one whole record.
        if i < len(runs) and runs[i][0] < first:
            old = decode_log_record(self.kv.get(self.log_key(runs[i][0])), runs[i][0])
            entries = old[:first - runs[i][0]] + entries
            start = runs[i][0]
        # Remove the replaced tail before writing, so a failed write leaves a
        # clean prefix of the old log, never stale records after new ones.
        in_place = None
        for run in runs[i:]:
            if run[0] > start:
                self.kv.remove(self.log_key(run[0]))
            else:
                in_place = run
        del runs[i:]
        at = start
        for chunk in split_batch(entries, MAX_RECORD_CHARS):
            try:
                self.kv.set(self.log_key(at), encode_log_record(at, chunk))
            except StorageFull:
                # A failed setItem changes nothing: the record being rewritten
                # in place keeps its old content, so keep _runs matching disk.
                if at == start and in_place is not None:
                    self._runs.append(in_place)
                raise
            self._runs.append([at, at + len(chunk) - 1])
            at += len(chunk)

    def set_hard_state(self, term, vote, commit):
        if self._hard == (term, vote, commit):
            return
        self.kv.set(self.hard_key, encode_hard_state(term, vote, commit))
        self._hard = (term, vote, commit)

    def save_snapshot(self, index, term, state):
        """Store a snapshot covering the log up to `index`, then drop the
        records it wholly covers (a record straddling it stays; load skips
        the covered part)."""
        self.kv.set(self.snap_key, encode_snapshot(index, term, state))
        keep = []
        for run in self._runs:
            if run[1] <= index:
                self.kv.remove(self.log_key(run[0]))
            else:
                keep.append(run)
        self._runs = keep

    def wipe(self):
        """Forget this node's state (for tests and an explicit user reset)."""
        for key in self.kv.keys():
            if key.startswith(self.ns):
                self.kv.remove(key)
        self._runs = []
        self._hard = None
