"""Declarative app pages: markup declares the node, a Python class the state.

    <raft-node size="3"></raft-node>
    <raft-status></raft-status>
    <script type="mpy" config="/pages/counter.toml">
    from raft.browser.app import start
    class Counter:
        def __init__(self): self.value = 0
        def apply(self, command): self.value += command; return self.value
        def snapshot(self): return self.value
        def restore(self, data): self.value = data
    app = start(Counter, on_change=lambda state: ...)
    </script>

start() reads the page (raft/browser/page_config.py), runs it as a member
(raft.runtime.driver.Driver over a raft.Node, localStorage and the WebRTC
transport) or as a client window (raft.runtime.client_driver.ClientDriver),
mounts the status panel, exposes window.wraft, and returns the App handle
that raft/browser/APP.md documents. Problems (bad markup/URL, damaged
storage) are shown on the page; the handle is then read-only with .error set.
"""

from raft.runtime.contract import GuardedState, ProposalError

APPLIED_HISTORY = 2000  # (index, command) pairs kept for tests and the console


class App:
    """The handle a page gets from start(): the same for members and clients."""

    def __init__(self, state, config, on_change=None, on_applied=None):
        self.state = state
        self.config = config
        self.runtime = None  # Driver or ClientDriver once started (see raft/runtime/contract.py)
        self.status_panel = None
        self.error = None
        self.applied = []  # recent [index, command] (the last APPLIED_HISTORY at least), in apply order
        self._renderers = [on_change] if on_change is not None else []
        self._applied_hooks = [on_applied] if on_applied is not None else []
        self._applied_seen = -1
        self.proxies = []  # window.wraft's create_proxy callbacks, kept for the page's life

    # ---- read accessors (APP.md) -------------------------------------
    @property
    def node_id(self):
        """This window's node id, or its client id in a client window."""
        return self.config.get("node")

    @property
    def applied_index(self):
        """The last log index applied to app.state (0 before any)."""
        return self.runtime.applied_index if self.runtime is not None else 0

    @property
    def read_only(self):
        if self.runtime is None or self.error is not None:
            return True
        return not self.runtime.status()["quorum"]

    # ---- hooks ----------------------------------------------------------
    def on_change(self, fn):
        """Register fn(state): called now (if the node runs) and after every
        applied batch. Usable as a decorator."""
        self._renderers.append(fn)
        if self.runtime is not None:
            self._call(fn)
        return fn

    def on_applied(self, fn):
        """Register fn(state, first_index, entries), called right after each
        batch of log entries is applied (entries are [term, client, seq,
        command]; entry i sits at index first_index + i). To see the stored
        log replayed too, pass it to start(on_applied=...)."""
        self._applied_hooks.append(fn)
        return fn

    # ---- requests -------------------------------------------------------
    async def propose(self, command):
        return await self._running().propose(command)

    async def propose_many(self, commands):
        """A burst of writes (each its own command) in one go: one round of
        replication and one wake-up instead of one per command. Returns
        apply()'s results in order, or raises the first ProposalError once
        every command has its outcome (.results holds each)."""
        return await self._running().propose_many(commands)

    async def read(self):
        """Linearizable read: the state, once it reflects every write
        committed before the call."""
        await self._running().read()
        return self.state

    async def change_membership(self, op, node):
        """Add a window as learner ("add_learner"), promote a learner to voter
        ("promote") or take a node out ("remove"), one change at a time.
        Returns the new configuration {"voters": [...], "learners": [...]};
        raises ProposalError (.error "unsafe", "invalid", "conf_pending",
        "no_leader", ...; .reason says why in words)."""
        return await self._running().change_membership(op, str(node))

    def _running(self):
        if self.runtime is None:
            raise ProposalError("halted")
        return self.runtime

    async def membership_action(self, op, node):
        """change_membership that never raises: {"ok": config} or {"error":
        code, "reason": text} (the status panel's and window.wraft's form)."""
        try:
            return {"ok": await self.change_membership(op, node)}
        except Exception as e:
            return {"error": getattr(e, "error", None) or "failed",
                    "reason": getattr(e, "reason", None) or str(e)}

    def status(self):
        """The runtime's status() (or the error that stopped the page), the cluster
        and the transport's last STUN/TURN error."""
        if self.runtime is not None:
            info = self.runtime.status()
            # why peers may be missing (a TURN server refusing our credentials,
            # peers with another cluster key)
            tr = self.runtime.transport
            info["ice_error"] = getattr(tr, "ice_error", None)
            info["keyed"] = getattr(tr, "key", None) is not None
            info["key_error"] = getattr(tr, "key_error", None)
            info.update(picture_status(self.runtime))
        else:
            info = {"node": self.config.get("node", "?"), "running": False, "error": self.error,
                    "size": self.config.get("size", 0)}
        info["cluster"] = self.config.get("cluster")
        return info

    # ---- from the runtime -------------------------------------------------
    def _call(self, fn):
        try:
            fn(self.state)
        except Exception as e:
            print("wraft: on_change handler failed: %r" % (e,))

    def _changed(self, runtime):
        if self.status_panel is not None:
            self.status_panel.changed()
        applied = runtime.applied_index
        if applied != self._applied_seen:
            self._applied_seen = applied
            for fn in self._renderers:
                self._call(fn)

    def _record_applied(self, first, entries):
        for fn in self._applied_hooks:
            fn(self.state, first, entries)

    def _note_apply(self, index, command):
        # GuardedState's on_apply: each write once, where the sessions applied
        # it (a write retried across a leader change can sit in the log twice).
        applied = self.applied
        applied.append([index, command])
        if len(applied) > 2 * APPLIED_HISTORY:  # amortised: trim now and then
            del applied[:len(applied) - APPLIED_HISTORY]

    def guarded_state(self):
        """The state machine the runtime's core applies to."""
        return GuardedState(self.state, self._note_apply)

    def show_error(self, message):
        self.error = message
        print("wraft: " + message)
        if self.status_panel is not None:
            self.status_panel.redraw()


def picture_status(runtime):
    """What the status picture (raft/browser/status_picture.py) shows beyond
    status(): a member's snapshot index, its election timer (a voter that
    does not lead), the client windows it serves and those it sees in the
    cluster."""
    from raft.client import is_client_id
    node = getattr(runtime, "node", None)
    if node is None:  # a client window
        return {}
    out = {"snapshot_index": node.first_index() - 1}  # the last index the snapshot covers
    if node.role != "leader" and node.self_voter:
        out["election"] = {"left_ms": node.election_deadline - runtime.clock(),
                           "timeout_ms": node.cfg.election_max_ms}
    hub = getattr(runtime, "clients", None)
    out["clients"] = sorted(hub.subs) if hub is not None else []
    out["present_clients"] = sorted(p for p in getattr(runtime.transport, "presence", None) or []
                                    if is_client_id(p))
    return out


def start(state_class, on_change=None, on_applied=None):
    """Build the node (or client) the page declares and start it; returns an App.

    on_change(state) and on_applied(state, first_index, entries) are
    registered before anything is applied, so they see the stored log
    replayed as well."""
    from js import Math, window
    from pyscript import document
    from raft.browser import automation
    from raft.browser.ffi import now_ms, tune_gc
    from raft.browser.page_config import PageConfigError, page_attrs, page_query, resolve
    from raft.browser.status_panel import StatusPanel

    tune_gc()

    def clock():
        return int(now_ms())

    def rand():
        return float(Math.random())

    location = window.location
    app = App(state_class(), {}, on_change, on_applied)
    app.status_panel = StatusPanel(app.status, clock, on_action=app.membership_action)
    app.proxies = automation.expose(app)
    try:
        app.config = resolve(page_attrs(document), str(location.host), str(location.pathname),
                             page_query(location))
        (_start_client if app.config["client"] else _start_member)(app, location, clock, rand)
    except (PageConfigError, StartError) as e:
        app.show_error(str(e))
    return app


class StartError(Exception):
    """The page's node cannot start (damaged storage, bad transport settings)."""


def _attach(app, runtime):
    app.runtime = runtime
    runtime.on_change = app._changed
    runtime.on_applied = app._record_applied


def _start_member(app, location, clock, rand):
    """The member runtime: the node's stored state, a raft.Node, the transport."""
    from raft.browser.ffi import now_ms
    from raft.client import is_client_id
    from raft.config import Config
    from raft.node import Node
    from raft.records import DamagedStorage
    from raft.runtime.client_hub import ClientHub
    from raft.runtime.driver import Driver, node_storage, open_log
    from raft.runtime.contract import new_client_id
    from raft.browser.storage import LocalStorageKV

    cfg = app.config
    try:
        log, restored = open_log(LocalStorageKV(), cfg["cluster"], cfg["node"],
                                 lazy_commit=True)
    except DamagedStorage as e:
        raise StartError("cannot start: %s" % e)
    if restored.repaired:
        print("wraft: " + restored.repaired)
    try:
        # Snapshot (if any) + the log after it; the first Ready re-applies
        # the entries up to commit, which rebuilds the app state.
        node = Node(cfg["node"], cfg["voters"],
                    config=Config(snapshot_entries=cfg["snapshot_entries"],
                                  snapshot_bytes=cfg["snapshot_bytes"]),
                    rng=rand, state_machine=app.guarded_state(),
                    storage=node_storage(restored), now_ms=clock())
    except ValueError as e:  # e.g. a stored vote for a node this cluster lacks
        raise StartError("cannot start: stored state does not fit this cluster (%s)" % e)
    driver = Driver(node, log, None, clock, restored=restored)
    # client windows get a channel only when they ask
    driver.transport = _transport(cfg, cfg["node"], location, driver,
                                  wants=lambda peer: not is_client_id(peer))
    driver.clients = ClientHub(node, driver.transport.send, backlog=driver.transport.backlog,
                               timer=lambda: float(now_ms()))
    _attach(app, driver)
    driver.start(new_client_id(rand))
    driver.transport.start()


def _start_client(app, location, clock, rand):
    """The client runtime: a session attached to one member (raft/CLIENT.md)."""
    from raft.client import ClientSession
    from raft.runtime.client_driver import ClientDriver
    from raft.runtime.contract import new_client_id

    client_id = app.config["node"] = new_client_id(rand)
    session = ClientSession(client_id, app.guarded_state(), now_ms=clock())
    driver = ClientDriver(session, clock, rand, via=app.config["via"])
    driver.transport = _transport(app.config, client_id, location, driver, wants=driver.wants,
                                  on_presence=driver.on_presence, ask_after_ms=0)
    _attach(app, driver)
    driver.start()
    driver.transport.start()


def _transport(cfg, node_id, location, runtime, **policy):
    from raft.browser.page_config import ws_url
    from raft.browser.transport import Transport
    try:
        return Transport(cluster=cfg["cluster"], node=node_id, on_message=runtime.on_message,
                         on_peer=runtime.on_peer, ws_url=ws_url(cfg["introducer"], location),
                         ice_servers=cfg["ice_servers"],
                         ice_transport_policy=cfg["ice_transport_policy"], **policy)
    except (ValueError, RuntimeError) as e:
        raise StartError("cannot start: %s" % e)
