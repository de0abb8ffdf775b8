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

One Ready, one atomic step. localStorage.setItem is atomic per key, so
every value a persist writes (log record, snapshot manifest, hard state)
carries the write counter "w" (one more per setItem) and the hard state as
of that write ("h": term, vote and a commit index clamped to what is stored
once that value is): the Ready's entries and hard state land together in
its log record, and the hard-state key is written only when no record of
the Ready carries its hard state, or term or vote changed (rare: so a lost
record never takes a vote with it). On load the value with the highest "w"
gives the hard state ("n": the last log index it knew was stored, so a lost
tail is seen). A record rewritten because the log was truncated there gets
a higher "w" than the old records after it, which load then knows as stale
leftovers of an interrupted write and removes. So a crash at any point of a
persist leaves either the old or the new hard state + log (a batch too big
for one value is split over several records written in order: a crash
between them leaves a prefix of the batch, consistent with the hard state
its records carry).

A snapshot may exceed one value, so it is written crash-safely in three
steps: its parts under a fresh generation (no reader looks there yet), then
the manifest (one setItem: the atomic switch), then the old generation and
the log records it covers are removed. A crash before the switch leaves the
old snapshot + log (orphan parts are removed at the next load); after it,
the new one.
"""

import binascii
import json

from .codec import compact as _dumps

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


def _is_hard_state(h):
    return (isinstance(h, list) and len(h) == 3 and _is_count(h[0]) and _is_count(h[2])
            and (h[1] is None or isinstance(h[1], str) or _is_count(h[1])))


def encode_hard_state(term, vote, commit, w=0, n=None, gone=None):
    # gone: [snapshot index, last index] while making room for a snapshot
    # (RecordLog._make_room): the log after that snapshot may be missing.
    obj = {"v": FORMAT, "term": term, "vote": vote, "commit": commit}
    if w:
        obj["w"] = w
        obj["n"] = n
    if gone is not None:
        obj["gone"] = gone
    return seal(obj)


def decode_hard_state(text):
    """-> (term, vote, commit, w, n, gone); w = 0 and n = None in the older form."""
    obj = unseal(text)
    if not isinstance(obj, dict) or obj.get("v") != FORMAT:
        raise RecordCorrupt("hard state has an unknown format")
    term, vote, commit = obj.get("term"), obj.get("vote"), obj.get("commit")
    if not _is_hard_state([term, vote, commit]):
        raise RecordCorrupt("hard state term/vote/commit are not valid")
    w, n, gone = obj.get("w", 0), obj.get("n"), obj.get("gone")
    if not _is_count(w) or (n is not None and not _is_count(n)):
        raise RecordCorrupt("hard state write counter is not a count")
    if gone is not None and not (isinstance(gone, list) and len(gone) == 2 and
                                 _is_count(gone[0]) and _is_count(gone[1])):
        raise RecordCorrupt("hard state has a bad log-gone mark")
    return term, vote, commit, w, n, gone


def encode_log_record(first, entries, gen=0, w=0, hard=None, entries_text=None):
    # gen: generation of the snapshot current when the record was written
    # (lets load() tell records older than a snapshot that discarded the log);
    # w, hard: write counter and hard state as of this write (module doc).
    # entries_text: compact JSON of `entries` when the caller has it: the
    # record is then spliced around it instead of encoding every entry again
    # (the same text seal() makes of {"v", "f", "e", "g", "w", "h"}).
    if entries_text is None:
        entries_text = _dumps(list(entries))
    body = '{"v":%d,"f":%d,"e":%s' % (FORMAT, first, entries_text)
    if gen:
        body += ',"g":%d' % gen
    if w:
        body += ',"w":%d,"h":%s' % (w, _dumps(list(hard)))
    body += "}"
    return "%08x" % _crc(body) + body


def log_record_generation(text):
    obj = unseal(text)
    g = obj.get("g", 0) if isinstance(obj, dict) else 0
    return g if _is_count(g) else 0


def decode_log_record(text, first):
    """Decode the record stored under log key `first`; returns its entries."""
    return read_log_record(text, first)[0]


def read_log_record(text, first):
    """-> (entries, w, hard state or None) of the record under log key `first`."""
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
    w, h = obj.get("w", 0), obj.get("h")
    if not _is_count(w) or (w and not _is_hard_state(h)):
        raise RecordCorrupt("log record has a bad write counter or hard state")
    return entries, w, (h if w else None)


def encode_snapshot_manifest(index, term, gen, parts, length, crc, discard_log=False,
                             w=0, hard=None, n=None):
    # "d": the snapshot replaced the whole log (installed from the leader):
    # log records of older generations are void even past its index.
    obj = {"v": FORMAT, "i": index, "t": term, "g": gen, "n": parts,
           "l": length, "c": crc, "d": 1 if discard_log else 0}
    if w:
        obj["w"] = w
        obj["h"] = list(hard)
        obj["last"] = n
    return seal(obj)


def decode_snapshot_manifest(text):
    obj = unseal(text)
    if not isinstance(obj, dict) or obj.get("v") != FORMAT:
        raise RecordCorrupt("snapshot manifest has an unknown format")
    for k in ("i", "t", "g", "n", "l", "c"):
        if not _is_count(obj.get(k)):
            raise RecordCorrupt("snapshot manifest field %s is not a count" % k)
    w = obj.get("w", 0)
    if not _is_count(w) or (w and (not _is_hard_state(obj.get("h")) or
                                   not _is_count(obj.get("last")))):
        raise RecordCorrupt("snapshot manifest has a bad write counter or hard state")
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
        self.repaired = None  # message when load had to clean something up

    @property
    def last_index(self):
        return self.first_index + len(self.entries) - 1


class RecordLog:
    """The Raft log and hard state of one node, kept in a key/value store.

    save() (or save_ready(rd)) persists one Ready as one atomic step (module
    doc). The caller sends no message that depends on a save until it has
    returned; on StorageFull it must stop accepting writes (what is on disk
    stays a consistent state: the one before, or a prefix of a split batch
    with the hard state its records carry).
    """

    def __init__(self, kv, cluster, node, lazy_commit=False):
        self.kv = kv
        # lazy_commit: a Ready that only moves the commit index writes
        # nothing; the caller stores it with flush_commit() (the browser's
        # driver, once per tick). The commit index is volatile in Raft: a
        # lower one on disk only means re-applying a few entries after a
        # restart, so one localStorage write per commit need not block the
        # commit path (etcd's MustSync skips fsync for the same reason).
        self.lazy_commit = lazy_commit
        self.commit_due = None  # (term, vote, commit) waiting for flush_commit()
        self.ns = namespace(cluster, node)
        self.hard_key = self.ns + "hard"
        self.snap_key = self.ns + "snap"
        self.snap_prefix = self.ns + "snap:"
        self.log_prefix = self.ns + "log:"
        self._snap = None  # manifest of the stored snapshot (dict) or None
        self._runs = []  # sorted [first, last] of each stored log record
        self._hard = None  # (term, vote, commit) as the newest stored value has it
        self._hard_key = None  # (term, vote) as the hard-state key has them
        self._w = 0  # write counter of the newest stored value

    def log_key(self, first):
        return self.log_prefix + str(first)

    def _stored_firsts(self):
        firsts = []
        n = len(self.log_prefix)
        for key in self.kv.keys():
            if key.startswith(self.log_prefix):
                tail = key[n:]
                # Only keys this module writes; anything else (a stray
                # "log:0006", "log:x") is not ours to read or to delete.
                if tail.isdigit() and str(int(tail)) == tail:
                    firsts.append(int(tail))
        firsts.sort()
        return firsts

    def load(self):
        """Read and check everything; finish what a crash interrupted.

        Raises DamagedStorage (with the reason) when anything this node may
        have acknowledged fails its checks: a damaged or missing log record,
        hard state or snapshot. Starting without it could lose committed
        data, so nothing is dropped: the store is left as it was found. Only
        what is provably void is removed: records wholly covered by the
        snapshot, records of an older generation than an installed snapshot,
        stale records an interrupted write left behind, orphan snapshot
        parts. Keys this module does not write are ignored.
        """
        r = Restored()
        newest = [0, None, None]  # [w, hard state, last index it knew stored]
        top_w = 0
        gone = None
        text = self.kv.get(self.hard_key)
        if text is not None:
            try:
                term, vote, commit, w, n, gone = decode_hard_state(text)
            except RecordCorrupt as e:
                raise DamagedStorage("term/vote record %s is damaged (%s); refusing to start"
                                     % (self.hard_key, e))
            newest = [w, (term, vote, commit), n]
            top_w = w
            self._hard_key = (term, vote)
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
            m = self._snap
            if m.get("w", 0) > newest[0]:
                newest = [m["w"], tuple(m["h"]), m["last"]]
            top_w = max(top_w, m.get("w", 0))
        self._remove_snapshot_parts(keep_gen=self._snap["g"] if self._snap else None)
        firsts = self._stored_firsts()
        snap_index = r.first_index - 1
        if gone is not None and gone[0] == snap_index:
            # A snapshot write ran out of room after the log it covers was
            # given up (its committed part was on a majority of the other
            # voters): start again from the older snapshot, empty log.
            for first in firsts:
                self.kv.remove(self.log_key(first))
            firsts = []
            hard = newest[1]
            newest = [newest[0], (hard[0], hard[1], snap_index), None]
            r.repaired = ("started again from the snapshot at index %d: the log after it "
                          "(up to %d; its committed part is on a majority of the other "
                          "members) was given up to make room for a newer snapshot"
                          % (snap_index, gone[1]))
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
        expected = r.first_index
        runs = []
        stale = []
        covered = []
        accepted_w = 0
        for k in range(len(firsts)):
            first = firsts[k]
            key = self.log_key(first)
            try:
                entries, w, hard = read_log_record(self.kv.get(key), first)
            except RecordCorrupt as e:
                nxt = firsts[k + 1] if k + 1 < len(firsts) else None
                if nxt is not None and nxt <= r.first_index:
                    covered.append(first)   # all it held is before the next record: covered
                    continue
                raise DamagedStorage(
                    "log record %s is damaged (%s); it may hold entries this node "
                    "acknowledged, so starting without it could lose committed data; "
                    "refusing to start" % (key, e))
            top_w = max(top_w, w)
            last = first + len(entries) - 1
            if last < r.first_index:
                covered.append(first)       # a crash cut compaction short
                continue
            if w < accepted_w:
                # Written before a record at a lower index that replaced the
                # tail: a leftover of a write a crash interrupted.
                stale.append(first)
                continue
            if first > expected:
                raise DamagedStorage(
                    "log entries %d..%d are missing (the next record is %s); entries this "
                    "node may have acknowledged are lost, refusing to start"
                    % (expected, first - 1, key))
            if first < expected and first >= r.first_index:
                raise DamagedStorage(
                    "log record %s overlaps the one before; refusing to start" % key)
            r.entries.extend(entries[expected - first:])
            runs.append([first, last])
            expected = last + 1
            accepted_w = w
            if w > newest[0]:
                newest = [w, tuple(hard), last]
        if newest[1] is not None:
            r.term, r.vote, r.commit = newest[1]
        if newest[2] is not None and newest[2] > r.last_index:
            raise DamagedStorage(
                "the log ends at index %d but its last write stored entries up to %d "
                "(records are missing); refusing to start" % (r.last_index, newest[2]))
        if r.commit > r.last_index:
            raise DamagedStorage(
                "commit index %d is beyond the stored log (last index %d); refusing to start"
                % (r.commit, r.last_index))
        # Checks passed: only now remove what is void (refusing changes nothing).
        for first in covered + list(reversed(stale)):
            self.kv.remove(self.log_key(first))
        if stale and r.repaired is None:
            r.repaired = ("finished a write a crash interrupted (removed %d stale log record%s)"
                          % (len(stale), "" if len(stale) == 1 else "s"))
        self._runs = runs
        self._hard = newest[1]
        self._w = top_w
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
            entries, _, hard = read_log_record(self.kv.get(self.log_key(first)), first)
            w = self._next_w()
            hard = hard or (0, None, 0)
            self.kv.set(self.log_key(first), encode_log_record(
                first, entries[:keep - first + 1], self._gen(), w,
                (hard[0], hard[1], min(hard[2], keep))))
            runs[-1][1] = keep

    @property
    def last_index(self):
        if self._runs:
            return self._runs[-1][1]
        return self._snap["i"] if self._snap else 0

    def _next_w(self):
        self._w += 1
        return self._w

    # ---------------------------------------------------------------- writing
    def save_ready(self, rd):
        """Persist what a raft.node.Ready asks for (raft/API.md), atomically."""
        hs = rd.hard_state or (None, None, None)
        self.save(rd.entries_from, rd.entries, hs[0], hs[1], hs[2], rd.snapshot,
                  rd.log_discarded, rd.log_replicated)

    def save(self, first=None, entries=None, term=None, vote=None, commit=None,
             snapshot=None, discard_log=False, log_elsewhere=False):
        """Persist one Ready as one atomic step: the snapshot [index, term,
        state] if any (then the log records it covers go, or all of them
        with discard_log), the entries from index `first` (replacing any
        stored at or after it) and the hard state (term None: unchanged),
        which rides in the entries' record and needs no write of its own.
        log_elsewhere: every entry that is or may be committed is stored on
        a majority of the other voters too, so the log may go before a
        snapshot that does not fit beside it (see _make_room)."""
        hard = self.commit_due or self._hard or (0, None, 0)
        if term is not None:
            hard = (term, vote, commit)
        if snapshot is not None:
            self._write_snapshot(snapshot[0], snapshot[1], snapshot[2], discard_log, hard,
                                 first - 1 if entries else None, log_elsewhere)
        if entries:
            self._write_entries(first, entries, hard)
        # The hard-state key too when no record carries this hard state, or
        # when term or vote changed (rare), so a lost record never takes a vote with it.
        self.commit_due = None
        if self._hard != hard or self._hard_key != (hard[0], hard[1]):
            if self.lazy_commit and self._only_commit_moved(hard):
                self.commit_due = hard
            else:
                self._write_hard(hard)

    def _only_commit_moved(self, hard):
        """The stored term and vote are `hard`'s, in the newest record and in
        the hard-state key alike: only the commit index is newer."""
        old = self._hard
        return (old is not None and old[0] == hard[0] and old[1] == hard[1]
                and self._hard_key == (hard[0], hard[1]) and hard[2] > old[2])

    def flush_commit(self):
        """Store the commit index a lazy save left in memory (no-op when none).
        Raises StorageFull like save(): the caller stops then."""
        hard = self.commit_due
        if hard is not None:
            self._write_hard(hard)
            self.commit_due = None

    def _write_hard(self, hard):
        w = self._next_w()
        self.kv.set(self.hard_key, encode_hard_state(hard[0], hard[1], hard[2], w,
                                                     self.last_index))
        self._hard = hard
        self._hard_key = (hard[0], hard[1])

    def _write_entries(self, first, entries, hard):
        """Store entries[0] at index `first`, replacing the stored tail from there."""
        entries = list(entries)
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
        replaced = runs[i:]
        written = []
        at = start
        # One encoding of the whole batch: usually it fits one record, and
        # then split_batch's per-entry sizing is not needed either.
        text = _dumps(entries)
        if len(text) - 1 <= MAX_RECORD_CHARS:
            chunks = [(entries, text)]
        else:
            chunks = [(c, None) for c in split_batch(entries, MAX_RECORD_CHARS)]
        try:
            for chunk, chunk_text in chunks:
                last = at + len(chunk) - 1
                # The hard state as of this record: its commit never beyond it.
                h = (hard[0], hard[1], hard[2] if hard[2] <= last else last)
                w = self._next_w()
                self.kv.set(self.log_key(at), encode_log_record(at, chunk, self._gen(), w, h,
                                                                chunk_text))
                written.append([at, last])
                self._hard = h
                at = last + 1
        finally:
            # New records first, then the replaced ones go (a crash between
            # leaves them stale: load removes them). A failed first setItem
            # changed nothing, so nothing goes then.
            if written:
                keys = [run[0] for run in written]
                for run in reversed(replaced):
                    if run[0] not in keys:
                        self.kv.remove(self.log_key(run[0]))
                self._runs = runs[:i] + written

    def _write_snapshot(self, index, term, state, discard_log, hard, upto, log_elsewhere):
        """Store a snapshot covering the log up to `index` (parts, then the
        manifest switch, see the module doc), then drop the log records it
        wholly covers (a record straddling it stays; load skips the covered
        part), or every log record when `discard_log`. `upto`: entries
        after it are about to be replaced (the hard state this manifest
        carries commits nothing past it). On StorageFull the previous
        snapshot and log stay as they were, unless log_elsewhere allowed
        making room first."""
        body = _dumps(state)
        try:
            manifest = self._write_snapshot_parts(index, term, body, discard_log, hard, upto)
        except StorageFull:
            if not log_elsewhere:
                raise StorageFull(
                    "a snapshot of %d characters does not fit beside the log it replaces, "
                    "and this node cannot drop that log first: it may hold entries it "
                    "acknowledged that no majority of the other members has stored" % len(body))
            self._make_room(index)
            try:
                manifest = self._write_snapshot_parts(index, term, body, discard_log, hard, upto)
            except StorageFull:
                raise StorageFull("a snapshot of %d characters does not fit even without the "
                                  "log it replaces" % len(body))
        self._snap = decode_snapshot_manifest(manifest)
        self._hard = tuple(self._snap["h"])
        self._remove_snapshot_parts(keep_gen=self._snap["g"])
        keep = []
        for run in self._runs:
            if discard_log or run[1] <= index:
                self.kv.remove(self.log_key(run[0]))
            else:
                keep.append(run)
        self._runs = keep

    def _write_snapshot_parts(self, index, term, body, discard_log, hard, upto):
        gen = self._snap["g"] + 1 if self._snap else 1
        parts = split_text(body, MAX_RECORD_CHARS)
        n = index if discard_log or self.last_index < index else self.last_index
        c = hard[2]
        if c > n:
            c = n
        if upto is not None and c > upto:
            c = upto
        try:
            for k in range(len(parts)):
                self.kv.set(self.snap_part_key(gen, k), "%08x" % _crc(parts[k]) + parts[k])
            w = self._next_w()
            manifest = encode_snapshot_manifest(index, term, gen, len(parts), len(body), _crc(body),
                                                discard_log, w, (hard[0], hard[1], c), n)
            self.kv.set(self.snap_key, manifest)
        except StorageFull:
            for k in range(len(parts)):
                self.kv.remove(self.snap_part_key(gen, k))
            raise
        return manifest

    def _make_room(self, index):
        """Drop the log records the new snapshot covers before writing it.
        Safe only when every entry that is or may be committed is on a
        majority of the other voters (the caller says so): if the snapshot
        still does not fit, or a crash comes first, the node starts again
        from its older snapshot with an empty log (the hard-state key marks
        the log as given up) and catches up like any lagging follower; no
        majority can elect a leader without the committed entries it gave
        up, and the uncommitted rest was never applied anywhere."""
        i0 = self._snap["i"] if self._snap else 0
        hard = self._hard or (0, None, 0)
        w = self._next_w()
        self.kv.set(self.hard_key, encode_hard_state(
            hard[0], hard[1], hard[2] if hard[2] < i0 else i0, w, i0, [i0, self.last_index]))
        self._hard_key = (hard[0], hard[1])
        keep = []
        for run in self._runs:
            if run[1] <= index:
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
        self._hard_key = None
        self._snap = None
        self._w = 0
        self.commit_due = None
