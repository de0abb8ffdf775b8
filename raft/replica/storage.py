"""A replica's durable state: the browser's Raft records in one SQLite file.

A window keeps its hard state, log batches and snapshot as records in
localStorage (raft/records.py: one key per record, each sealed with its
crc32). The replica keeps exactly the same records as the rows of one table,
and reads and writes them through the same RecordLog, so loading repairs or
refuses exactly as a window does: it is the same code. What SQLite adds is
the transaction: every persist of a Ready (RecordLog.save_ready: snapshot
switch, entries, hard state) is one transaction, so a crash at any point
leaves the state before that Ready or the state after it with no leftovers
to tidy on load (a window's records get there too, through the write
counters records.py keeps, but may be left between two setItem calls).

Durability: journal_mode=WAL with synchronous=FULL. In WAL mode FULL syncs
the WAL on every COMMIT before it returns, so a Ready that was persisted
(and then acknowledged) survives a power cut; NORMAL would keep the file
intact but could lose the last transactions, i.e. acknowledged entries.
The one exception is etcd's MustSync rule: a Ready that changes only the
commit index (no entries, no snapshot, same term and vote) is committed
without the sync (transaction(sync=False)); the next synced commit carries
it. Losing it to a power cut only makes the node restart with a lower commit
index, which Raft tolerates (the leader tells it again), and it spares an
fsync (about 4 ms here) for every acknowledgement a leader counts.

The file also names the cluster and node it belongs to (table meta), and an
advisory lock keeps a second process off it: two processes acting as the
same node would break Raft safety.
"""

import fcntl
import os
import sqlite3
from contextlib import contextmanager

from raft.records import RecordLog, StorageFull

FORMAT = "1"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS records (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID",
)


class StoreRefused(Exception):
    """The file cannot be used: not a healthy SQLite database, another
    cluster's or node's file, or in use by another process. It is left as
    it was."""


class StoreFailed(Exception):
    """SQLite failed while writing (other than a full disk); the last
    committed transaction is what the file holds."""


def _is_full(exc):
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code == sqlite3.SQLITE_FULL
    return "full" in str(exc)


class SQLiteStore:
    """The key/value store RecordLog expects (get/set/remove/keys), in SQLite,
    plus transaction(). `max_bytes` caps the database size (PRAGMA
    max_page_count): how tests and benchmarks simulate a full disk."""

    def __init__(self, path, cluster, node, max_bytes=None):
        self.path = str(path)
        self.cluster = cluster
        self.node = node
        self._lock_fd = None
        self.db = None
        self.commits = 0
        self._lock()
        try:
            self._open(max_bytes)
        except StoreRefused:
            self.close()
            raise
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreRefused("%s is not a healthy SQLite database (%s); refusing to start and "
                               "leaving it as it is: restore it from a backup, or move it aside "
                               "to rejoin the cluster as a new node" % (self.path, e))

    def _lock(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StoreRefused("cannot open %s: %s" % (self.path, e.strerror or e))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreRefused("%s is in use by another process (a replica already runs on "
                               "it); two processes must never act as one node" % self.path)
        self._lock_fd = fd

    def _open(self, max_bytes):
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE .. COMMIT).
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # Read-only checks first: a damaged file is never written to.
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            raise StoreRefused("%s fails SQLite's integrity check (%s); refusing to start and "
                               "leaving it as it is" % (self.path, "; ".join(r[0] for r in rows[:3])))
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and not {"meta", "records"} <= tables:
            raise StoreRefused("%s is an SQLite database but not a WRaft replica's (tables: %s); "
                               "refusing to touch it" % (self.path, ", ".join(sorted(tables))))
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreRefused("%s: cannot switch to WAL mode (got %s)" % (self.path, mode))
        self.db.execute("PRAGMA synchronous=FULL")
        if max_bytes is not None:
            page = self.db.execute("PRAGMA page_size").fetchone()[0]
            self.db.execute("PRAGMA max_page_count=%d" % max(1, max_bytes // page))
        with self.transaction():
            for stmt in _SCHEMA:
                self._exec(stmt)
            meta = dict(self._exec("SELECT k, v FROM meta").fetchall())
            if not meta:
                if self._exec("SELECT 1 FROM records LIMIT 1").fetchone():
                    raise StoreRefused("%s holds records but no owner; refusing to start" % self.path)
                self._exec("INSERT INTO meta VALUES ('format', ?), ('cluster', ?), ('node', ?)",
                           (FORMAT, self.cluster, self.node))
            elif meta.get("format") != FORMAT:
                raise StoreRefused("%s has storage format %r; this replica reads format %s"
                                   % (self.path, meta.get("format"), FORMAT))
            elif (meta.get("cluster"), meta.get("node")) != (self.cluster, self.node):
                raise StoreRefused("%s belongs to node %s of cluster %s, not node %s of cluster %s; "
                                   "refusing to start" % (self.path, meta.get("node"),
                                                          meta.get("cluster"), self.node, self.cluster))

    # ---- the statements (tests inject faults here) ----------------------
    def _exec(self, sql, args=()):
        try:
            return self.db.execute(sql, args)
        except sqlite3.DatabaseError as e:
            if _is_full(e):
                raise StorageFull("disk full writing %s: %s" % (self.path, e))
            raise

    # ---- RecordLog's key/value interface --------------------------------
    def get(self, key):
        row = self._exec("SELECT v FROM records WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key, value):
        self._exec("INSERT OR REPLACE INTO records (k, v) VALUES (?, ?)", (key, value))

    def remove(self, key):
        self._exec("DELETE FROM records WHERE k = ?", (key,))

    def keys(self):
        return [r[0] for r in self._exec("SELECT k FROM records")]

    # ---- the file's own notes (table meta) ------------------------------
    def meta(self):
        """get/set on table meta, beside the records: where the transport
        keeps the introducer's id token (raft/peering.py), so a restart
        takes the node id back at once."""
        return _MetaKV(self)

    # ---- transactions ---------------------------------------------------
    @contextmanager
    def transaction(self, sync=True):
        """Everything inside commits as one step, or not at all; with sync,
        durably (fsync) before this returns. A nested use joins the outer
        transaction."""
        if self.db.in_transaction:
            yield
            return
        if not sync:
            self._exec("PRAGMA synchronous=NORMAL")
        try:
            self._exec("BEGIN IMMEDIATE")
            try:
                yield
                self._exec("COMMIT")
                self.commits += 1
            except BaseException:
                if self.db.in_transaction:
                    try:
                        self.db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        finally:
            if not sync:
                self.db.execute("PRAGMA synchronous=FULL")

    def file_bytes(self):
        """Bytes on disk: the database file and its WAL."""
        n = 0
        for suffix in ("", "-wal"):
            try:
                n += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return n

    def checkpoint(self):
        """Fold the WAL into the database file (at a clean stop)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self):
        if self.db is not None:
            try:
                if not self.db.in_transaction:
                    self.checkpoint()
            except sqlite3.Error:
                pass
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class _MetaKV:
    _RESERVED = ("format", "cluster", "node")

    def __init__(self, store):
        self.store = store

    def get(self, key):
        row = self.store._exec("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key, value):
        if key in self._RESERVED:
            raise ValueError("meta key %r is the file's owner" % key)
        with self.store.transaction():
            self.store._exec("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))


def open_records(path, cluster, node, max_bytes=None):
    """Open the file and load the node's records: (store, log, restored).
    Raises StoreRefused (unusable file) or records.DamagedStorage (records
    that a window would refuse too); the file is then left as it was,
    except for what RecordLog.load repairs (in one transaction)."""
    store = SQLiteStore(path, cluster, node, max_bytes=max_bytes)
    try:
        log = RecordLog(store, cluster, node)
        with store.transaction():
            restored = log.load()
    except BaseException:
        store.close()
        raise
    return store, log, restored


def must_sync(rd, synced_term_vote):
    """etcd's MustSync: a Ready must reach the disk before anything is sent
    when it holds entries or a snapshot, or changes the term or the vote
    (what this node promised); a commit index alone need not."""
    hs = rd.hard_state
    return bool(rd.entries or rd.snapshot is not None
                or (hs is not None and (hs[0], hs[1]) != synced_term_vote))

