"""Durable Raft records over a tiny key/value store (localStorage in the browser).

Pure Python for CPython, MicroPython and Pyodide: the browser binding
(raft/browser/storage.py) only supplies a key/value object with
get(key) -> str | None, set(key, value), remove(key), keys() -> list, and
raises StorageFull when the quota is exhausted.

Key layout, one namespace per cluster and node so same-origin windows of
different clusters or nodes can never clash:

    wraft:<cluster>:<node>:hard          term, vote, commit
    wraft:<cluster>:<node>:log:<first>   a batch of entries starting at <first>
    wraft:<cluster>:<node>:snap          snapshot manifest: index, term, generation,
                                         part count, length and crc32 of its text
    wraft:<cluster>:<node>:snap:<gen>:<k>  part k of snapshot generation <gen>

Each value is "<crc32 as 8 hex digits><json body>". Log records hold one
persist batch (one setItem per Ready, not one per entry). Entries are opaque
JSON values to this module; their index is implied by position. A snapshot
covers a prefix of the log, after which the log records it covers can be
removed, so compaction needs no change to the layout.

A snapshot may exceed one value, so it is written crash-safely in three
steps: its parts under a fresh generation (no reader looks there yet), then
the manifest (one setItem: the atomic switch), then the old generation and
the log records it covers are removed. A crash before the switch leaves the
old snapshot + log (orphan parts are removed at the next load); after it,
the new one.
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


def encode_log_record(first, entries, gen=0):
    # gen: generation of the snapshot current when the record was written
    # (lets load() tell records older than a snapshot that discarded the log).
    obj = {"v": FORMAT, "f": first, "e": list(entries)}
    if gen:
        obj["g"] = gen
    return seal(obj)


def log_record_generation(text):
    obj = unseal(text)
    g = obj.get("g", 0) if isinstance(obj, dict) else 0
    return g if _is_count(g) else 0


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


def encode_snapshot_manifest(index, term, gen, parts, length, crc, discard_log=False):
    # "d": the snapshot replaced the whole log (installed from the leader):
    # log records of older generations are void even past its index.
    return seal({"v": FORMAT, "i": index, "t": term, "g": gen, "n": parts,
                 "l": length, "c": crc, "d": 1 if discard_log else 0})


def decode_snapshot_manifest(text):
    obj = unseal(text)
    if not isinstance(obj, dict) or obj.get("v") != FORMAT:
        raise RecordCorrupt("snapshot manifest has an unknown format")
    for k in ("i", "t", "g", "n", "l", "c"):
        if not _is_count(obj.get(k)):
            raise RecordCorrupt("snapshot manifest field %s is not a count" % k)
    return obj


def split_text(text, limit):
    return [text[i:i + limit] for i in range(0, len(text), limit)] or [""]


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
        self.snap_prefix = self.ns + "snap:"
        self.log_prefix = self.ns + "log:"
        self._snap = None  # manifest of the stored snapshot (dict) or None
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
                r.snapshot = self._load_snapshot(text)
            except RecordCorrupt as e:
                raise DamagedStorage("snapshot %s is damaged (%s); refusing to start "
                                     "(its log prefix is gone, so it cannot be rebuilt here; "
                                     "clear this site's storage to rejoin as a new node)"
                                     % (self.snap_key, e))
            r.first_index = r.snapshot[0] + 1
        self._remove_snapshot_parts(keep_gen=self._snap["g"] if self._snap else None)
        expected = r.first_index
        runs = []
        damage_at = None
        reason = None
        firsts = self._stored_firsts()
        if self._snap is not None and self._snap.get("d") == 1:
            # Crash after an installed snapshot's switch, before the old log
            # was removed: finish the removal.
            for first in list(firsts):
                text = self.kv.get(self.log_key(first))
                try:
                    old = log_record_generation(text) < self._snap["g"]
                except RecordCorrupt:
                    old = True
                if old:
                    self.kv.remove(self.log_key(first))
                    firsts.remove(first)
        for first in firsts:
            try:
                entries = decode_log_record(self.kv.get(self.log_key(first)), first)
            except RecordCorrupt as e:
                damage_at, reason = first, "record %s: %s" % (self.log_key(first), e)
                break
            last = first + len(entries) - 1
            if last < r.first_index:
                # Wholly covered by the snapshot: a crash cut compaction short.
                self.kv.remove(self.log_key(first))
                continue
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

    def _gen(self):
        return self._snap["g"] if self._snap else 0

    def snap_part_key(self, gen, k):
        return self.snap_prefix + str(gen) + ":" + str(k)

    def _load_snapshot(self, text):
        m = decode_snapshot_manifest(text)
        parts = []
        for k in range(m["n"]):
            part = self.kv.get(self.snap_part_key(m["g"], k))
            if part is None or len(part) < 8:
                raise RecordCorrupt("part %d of %d is missing" % (k, m["n"]))
            try:
                want = int(part[:8], 16)
            except ValueError:
                raise RecordCorrupt("part %d has no checksum" % k)
            if _crc(part[8:]) != want:
                raise RecordCorrupt("part %d fails its checksum" % k)
            parts.append(part[8:])
        body = "".join(parts)
        if len(body) != m["l"] or _crc(body) != m["c"]:
            raise RecordCorrupt("snapshot text does not match its manifest")
        try:
            state = json.loads(body)
        except ValueError:
            raise RecordCorrupt("snapshot text is not JSON")
        self._snap = m
        return m["i"], m["t"], state

    def _remove_snapshot_parts(self, keep_gen):
        # Parts of other generations: the old snapshot after a switch, or
        # orphans of a write that crashed before its manifest was stored.
        prefix = self.snap_prefix
        keep = None if keep_gen is None else prefix + str(keep_gen) + ":"
        for key in self.kv.keys():
            if key.startswith(prefix) and (keep is None or not key.startswith(keep)):
                self.kv.remove(key)

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
            self.kv.set(self.log_key(first), encode_log_record(first, entries[:keep - first + 1],
                                                               self._gen()))
            runs[-1][1] = keep

    @property
    def last_index(self):
        if self._runs:
            return self._runs[-1][1]
        return self._snap["i"] if self._snap else 0

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
                self.kv.set(self.log_key(at), encode_log_record(at, chunk, self._gen()))
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

    def save_snapshot(self, index, term, state, discard_log=False):
        """Store a snapshot covering the log up to `index` (parts, then the
        manifest switch, see the module doc), then drop the log records it
        wholly covers (a record straddling it stays; load skips the covered
        part), or every log record when `discard_log`. On StorageFull the
        previous snapshot and log stay as they were."""
        body = _dumps(state)
        gen = self._snap["g"] + 1 if self._snap else 1
        parts = split_text(body, MAX_RECORD_CHARS)
        try:
            for k in range(len(parts)):
                self.kv.set(self.snap_part_key(gen, k), "%08x" % _crc(parts[k]) + parts[k])
            manifest = encode_snapshot_manifest(index, term, gen, len(parts), len(body), _crc(body),
                                                discard_log)
            self.kv.set(self.snap_key, manifest)
        except StorageFull:
            for k in range(len(parts)):
                self.kv.remove(self.snap_part_key(gen, k))
            raise
        self._snap = decode_snapshot_manifest(manifest)
        self._remove_snapshot_parts(keep_gen=gen)
        keep = []
        for run in self._runs:
            if discard_log or run[1] <= index:
                self.kv.remove(self.log_key(run[0]))
            else:
                keep.append(run)
        self._runs = keep

    def bytes_used(self):
        """Characters (keys + values) this node holds in the store."""
        n = 0
        for key in self.kv.keys():
            if key.startswith(self.ns):
                n += len(key) + len(self.kv.get(key) or "")
        return n

    def wipe(self):
        """Forget this node's state (for tests and an explicit user reset)."""
        for key in self.kv.keys():
            if key.startswith(self.ns):
                self.kv.remove(key)
        self._runs = []
        self._hard = None
        self._snap = None
