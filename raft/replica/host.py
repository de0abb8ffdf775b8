"""The replica process: one unchanged raft.Node, driven like a window.

It runs the member runtime windows run (raft/runtime/driver.py: the Ready
loop, proposals, reads, membership changes, status) and ClientHub
(raft/runtime/client_hub.py, the member side of client windows),
with three things of its own:
- storage: the records in SQLite, each Ready persisted in one transaction
  (raft/replica/storage.py); a full disk halts the node, having
  acknowledged nothing it could not store;
- transport: aiortc (raft/replica/transport.py), same protocol as windows;
- the state: the app's class when --state MODULE:CLASS imports, applied
  like a window does (so the replica can serve client windows and the CLI
  client); otherwise an opaque state that applies nothing: the replica keeps
  the log whole (no compaction) and the leader's snapshots as received, and
  passes both on when it leads.

Exit codes (also in the README's Hosting part):
  0 stopped cleanly (Ctrl-C, SIGTERM, "quit" on stdin)
  1 internal error (the node halted on a bug)
  2 bad command line (argparse)
  3 storage refused: damaged records, a corrupt or foreign SQLite file, a
    file in use by another process, or stored state that does not fit
  4 disk full: the node stopped; nothing unstored was acknowledged
  5 the introducer could not be reached at start
  6 the introducer refused us: a wrong or missing access secret
    (--secret-file, WRAFT_SECRET), or the node id is another process's
  9 the cluster's peers and we disagree about the cluster key (another key,
    or none where they have one: --key-file, WRAFT_KEY), and no channel
    ever opened
"""

import asyncio
import importlib
import json
import random
import signal
import sys
import threading
import time

from raft import client as client_proto
from raft.runtime.client_hub import ClientHub
from raft.runtime.driver import Driver, node_storage
from raft.runtime.contract import GuardedState, ProposalError, new_client_id
from raft.client import is_client_id
from raft.config import Config
from raft.node import Node
from raft.records import DamagedStorage, StorageFull
from raft.replica.status import StatusPrinter
from raft.replica.storage import StoreRefused, must_sync, open_records
from raft.replica.transport import Transport

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_STORAGE = 0, 1, 2, 3
EXIT_DISK_FULL, EXIT_INTRODUCER, EXIT_REFUSED = 4, 5, 6
EXIT_KEY = 9
KEY_TROUBLE_S = 5.0  # key trouble this long with no channel ever opened: EXIT_KEY
STATUS_EVERY_S = 0.25
MEMBERSHIP_OPS = ("add_learner", "promote", "remove")


class OpaqueState:
    """The state of an app whose class is not importable here: commands are
    kept in the log, not applied. restore() keeps the leader's snapshot data
    (the node keeps the snapshot itself and sends it on as received);
    snapshot() is never called, because compaction is off."""

    def __init__(self):
        self.data = None

    def apply(self, command):
        return None

    def snapshot(self):
        raise RuntimeError("an opaque replica does not make snapshots")

    def restore(self, data):
        self.data = data


def load_state_class(spec):
    """"module:Class" -> (class, None), or (None, why it cannot be used)."""
    if not spec:
        return None, "no --state given"
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        return None, "--state %r: need MODULE:CLASS, e.g. components.todo:TodoState" % spec
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except Exception as e:
        return None, "--state %s cannot be imported (%s: %s)" % (spec, type(e).__name__, e)
    if not (callable(getattr(cls, "apply", None)) or callable(getattr(cls, "apply_entry", None))):
        return None, "--state %s has no apply() (or apply_entry()) method" % spec
    for method in ("snapshot", "restore"):
        if not callable(getattr(cls, method, None)):
            return None, "--state %s has no %s() method" % (spec, method)
    return cls, None


class NoClients:
    """Member side for client windows when we apply nothing: we cannot give
    them a state snapshot, so each is refused and moves to another member."""

    subs = {}

    def __init__(self, send):
        self.send = send
        self.stats = {"refused": 0}

    def on_message(self, peer, text):
        self.stats["refused"] += 1
        self.send(peer, client_proto.encode(["x", "this member does not apply the log"]))

    def on_peer(self, peer, up):
        pass

    def on_applied(self, first, entries):
        pass

    def on_result(self, client_id, seq, error, value):
        pass

    def on_read(self, ctx, error):
        return False

    def tick(self):
        pass


class ReplicaDriver(Driver):
    """The browser's Driver with SQLite persistence: one transaction per
    Ready, synced unless it only moves the commit index (storage.must_sync)."""

    store = None
    exit_code = None
    synced_term_vote = (0, None)  # (term, vote) as last synced to disk

    def persist(self, rd):
        if not rd.entries and rd.hard_state is None and rd.snapshot is None:
            return True
        sync = must_sync(rd, self.synced_term_vote)
        try:
            with self.store.transaction(sync=sync):
                self.log.save_ready(rd)
        except StorageFull as e:
            self.exit_code = EXIT_DISK_FULL
            self.halt("%s. The node stopped; nothing it could not store was acknowledged. "
                      "Free space and start it again." % e)
            return False
        except Exception as e:  # an I/O error: the file holds the last committed Ready
            self.exit_code = EXIT_STORAGE
            self.halt("cannot write %s: %s" % (self.store.path, e))
            return False
        if sync:
            self.stats["synced"] = self.stats.get("synced", 0) + 1
            if rd.hard_state is not None:
                self.synced_term_vote = (rd.hard_state[0], rd.hard_state[1])
        if rd.snapshot is not None:
            self.stats["snapshots_saved"] = self.stats.get("snapshots_saved", 0) + 1
        if rd.entries:
            self.stats["persist_batches"] += 1
        return True


def clock():
    return int(time.monotonic() * 1000)


def refusal_message(error, node):
    """Words for the introducer's fatal refusal (exit 6)."""
    if error.startswith("auth"):
        why = ("the server wants its access secret: give --secret-file (the server's) or "
               "WRAFT_SECRET" if error == "auth_required" else
               "wrong access secret: check --secret-file / WRAFT_SECRET")
    elif error == "id_held":
        why = ("node %s is held by another window or process (or was, within the server's "
               "--id-memory) and this file has not its token" % node)
    else:
        why = "another process joined as node %s with its token" % node
    return "the introducer refused us (%s): %s" % (error, why)


class KeyTrouble:
    """Says when the cluster's peers and we disagree about the key for good:
    the transport's key_error standing for KEY_TROUBLE_S while no channel
    ever opened (one peer with a stale key among good ones is no reason)."""

    def __init__(self):
        self.since = None

    def check(self, transport, now):
        """The words to exit with, or None."""
        if transport.key_error is None or transport.stats["channels_opened"]:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        if now - self.since < KEY_TROUBLE_S:
            return None
        return ("cluster key refused: %s (check --key-file / WRAFT_KEY)" % transport.key_error)


class Replica:
    """Everything one `python -m raft.replica` runs (see __main__.py for the options)."""

    def __init__(self, opts, out=None, printer=None):
        self.opts = opts
        self.out = out or sys.stdout
        self.printer = printer or StatusPrinter()
        self.stopping = None
        self.exit_code = EXIT_OK
        self.driver = None
        self.transport = None
        self.store = None
        self.state = None

    # ---- start --------------------------------------------------------
    def build(self):
        """Open storage and make the node, driver and transport; returns an
        exit code when that fails (after saying why), else None."""
        o = self.opts
        cls, why = load_state_class(o.state)
        if cls is None:
            note = "not applying: %s; keeping the log and the leader's snapshots" % why
            state, snap_entries, snap_bytes = OpaqueState(), 0, 0
        else:
            note = "applying with %s" % o.state
            state, snap_entries, snap_bytes = cls(), o.snapshot_entries, o.snapshot_bytes
        self.printer.say("wraft replica: " + note)
        try:
            self.store, log, restored = open_records(o.db, o.cluster, o.node,
                                                      max_bytes=o.max_db_bytes)
        except (StoreRefused, DamagedStorage) as e:
            return self.fail(EXIT_STORAGE, "cannot start: %s" % e)
        if restored.repaired:
            self.printer.say("wraft replica: " + restored.repaired)
        try:
            node = Node(o.node, [str(i) for i in range(o.size)],
                        config=Config(snapshot_entries=snap_entries, snapshot_bytes=snap_bytes),
                        rng=random.random, state_machine=GuardedState(state),
                        storage=node_storage(restored), now_ms=clock())
        except ValueError as e:
            self.store.close()
            return self.fail(EXIT_STORAGE, "cannot start: stored state in %s does not fit this "
                                           "cluster (%s)" % (o.db, e))
        self.state = state
        driver = self.driver = ReplicaDriver(node, log, None, clock, restored=restored)
        driver.store = self.store
        driver.synced_term_vote = (restored.term, restored.vote)
        self.transport = Transport(o.cluster, o.node, on_message=driver.on_message,
                                   on_peer=driver.on_peer, ws_url=o.introducer,
                                   ice_servers=o.ice_servers, secret=o.secret,
                                   wants=lambda peer: not is_client_id(peer),
                                   tokens=self.store.meta(), key=o.cluster_key)
        driver.transport = self.transport
        if cls is None:
            driver.clients = NoClients(self.transport.send)
        else:
            driver.clients = ClientHub(node, self.transport.send, backlog=self.transport.backlog,
                                       timer=lambda: time.perf_counter() * 1000)
        return None

    def fail(self, code, message):
        self.printer.say("wraft replica: " + message)
        self.exit_code = code
        return code

    async def run(self):
        """Run until stopped; returns the exit code."""
        if self.build() is not None:
            return self.exit_code
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):
                pass
        o = self.opts
        self.driver.start(new_client_id(random.random))  # the one scheme pages use too
        self.transport.start()
        if o.commands:
            self._read_commands(loop)
        deadline = time.monotonic() + o.wait_introducer
        key_trouble = KeyTrouble()
        try:
            while not self.stopping.is_set():
                self._show()
                t = self.transport
                if t.error is not None:
                    self.fail(EXIT_REFUSED, refusal_message(t.error, o.node))
                    break
                why = key_trouble.check(t, time.monotonic())
                if why is not None:
                    self.fail(EXIT_KEY, why)
                    break
                if not t.joined_once and time.monotonic() > deadline:
                    self.fail(EXIT_INTRODUCER, "%s (waited %g s; is the server running?)"
                              % (t.last_error or "no answer from the introducer at %s"
                                 % o.introducer, o.wait_introducer))
                    break
                if self.driver.error is not None:
                    self.fail(self.driver.exit_code or EXIT_INTERNAL,
                              "node halted: %s" % self.driver.error)
                    break
                try:
                    await asyncio.wait_for(self.stopping.wait(), STATUS_EVERY_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.shutdown()
        return self.exit_code

    def stop(self):
        if self.stopping is not None:
            self.stopping.set()

    async def shutdown(self):
        self.driver.stop()
        await self.transport.aclose()
        self._show(force=True)
        self.printer.done()
        self.store.close()

    # ---- terminal -------------------------------------------------------
    def status(self):
        info = self.driver.status()
        info["cluster"] = self.opts.cluster
        info["introducer_up"] = bool(self.transport.introducer_up)
        info["clients"] = sorted(self.driver.clients.subs)  # attached client windows / CLIs
        info["presence"] = list(self.transport.presence)  # everyone joined to the introducer
        info["keyed"] = self.transport.key is not None  # else an open cluster
        info["key_error"] = self.transport.key_error
        info["transport_stats"] = dict(self.transport.stats)
        info["db_bytes"] = self.store.file_bytes()
        info["state_note"] = "not applying" if isinstance(self.state, OpaqueState) else None
        return info

    def _show(self, force=False):
        self.printer.show(self.status(), force=force)

    async def bench(self, seconds=3.0, inflight=256, command=1, writes=None):
        """Pipelined writes proposed here: `inflight` at a time for `seconds`
        (or until `writes` are done), each awaited until committed and
        applied here. What the bench page measures in a window."""
        lat = []
        errors = []
        t0 = time.perf_counter()
        end = t0 + float(seconds)

        async def one():
            while time.perf_counter() < end and (writes is None or len(lat) < writes):
                t = time.perf_counter()
                try:
                    await self.driver.propose(command)
                except ProposalError as e:
                    errors.append(e.error)
                    if len(errors) > 10 * inflight:
                        return
                    await asyncio.sleep(0.01)
                    continue
                lat.append(time.perf_counter() - t)
        await asyncio.gather(*(one() for _ in range(int(inflight))))
        seconds = time.perf_counter() - t0
        lat.sort()
        return {"writes": len(lat), "seconds": round(seconds, 3),
                "per_s": round(len(lat) / seconds, 1) if seconds else None,
                "p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
                "p99_ms": round(1000 * lat[len(lat) * 99 // 100], 2) if lat else None,
                "errors": len(errors), "last_index": self.driver.node.applied_index}

    # ---- commands on stdin (one per line; JSON lines on stdout) ---------
    def _read_commands(self, loop):
        def reader():
            for line in sys.stdin:
                loop.call_soon_threadsafe(self._command, line.strip())
        threading.Thread(target=reader, daemon=True).start()

    def _command(self, line):
        if line:
            asyncio.get_running_loop().create_task(self._run_command(line))

    async def _run_command(self, line):
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if word in MEMBERSHIP_OPS and rest:
                out = {"ok": await self.driver.change_membership(word, rest)}
            elif word == "propose" and rest:
                out = {"ok": await self.driver.propose(json.loads(rest))}
            elif word == "read":
                await self.driver.read()
                out = {"ok": self.driver.node.applied_index}
            elif word == "status":
                out = {"ok": self.status()}
            elif word == "state" and not isinstance(self.state, OpaqueState):
                out = {"ok": self.state.snapshot(), "applied": self.driver.node.applied_index}
            elif word == "bench":
                out = {"ok": await self.bench(**json.loads(rest or "{}"))}
            elif word == "quit":
                self.stop()
                out = {"ok": "stopping"}
            else:
                out = {"error": "invalid", "reason": "commands: add_learner N | promote N | "
                       "remove N | propose JSON | read | status | state | bench {...} | quit"}
        except ProposalError as e:
            out = {"error": e.error, "reason": e.reason or (str(e.leader) if e.leader else None)}
        except (ValueError, TypeError) as e:
            out = {"error": "invalid", "reason": str(e)}
        out["command"] = line
        self.out.write(json.dumps(out) + "\n")
        self.out.flush()
