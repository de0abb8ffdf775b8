"""Declarative app pages: markup declares the node, a Python class the state.

    <raft-node size="3" introducer="/ws" ice-servers='[]' cluster="notes"></raft-node>
    <raft-status></raft-status>
    <script type="wraft-python">
    from raft.browser.app import start
    class Counter:
        def __init__(self): self.value = 0
        def apply(self, command): self.value += command; return self.value
        def snapshot(self): return self.value
        def restore(self, data): self.value = data
    app = start(Counter, on_change=lambda state: ...)
    </script>

Every <raft-node> attribute is optional: size (voters the cluster starts
with, 1..7, default 3; ?size=N overrides it), introducer (URL of the
WebSocket introducer, default /ws), ice-servers (JSON list of RTCIceServer
dicts; absent = the introducer's list), cluster (name).
The node id comes from the host name (wraftN.<domain> is node N) or from
?node=N (0..63; ids from size on start outside the cluster until a member
adds them); the cluster name from ?cluster=NAME, else the attribute, else the
page's path (/counter -> "counter"). The URL hash is left to the app.

start() returns an App handle: app.state (the local state object), await
app.propose(command), app.submit(command) (fire-and-forget for event
handlers), await app.read() (linearizable), await app.change_membership(op,
node) (membership changes), app.read_only, app.error.
"""

import asyncio
import json

from raft.records import DamagedStorage

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
DEFAULT_SIZE = 3
MAX_SIZE = 7  # voters at most (the core's Config.max_voters)
MAX_NODE_ID = 63  # window ids 0..63; ids >= size start as non-members
APPLIED_HISTORY = 2000  # (index, command) pairs kept for tests/inspection
STATUS_EVERY_MS = 100  # the status component redraws at most this often
# Log compaction defaults: keeps localStorage to a snapshot + a few hundred
# KiB of log, far under the ~5 MiB per-origin quota.
DEFAULT_SNAPSHOT_ENTRIES = 2000
DEFAULT_SNAPSHOT_BYTES = 256 * 1024


class PageConfigError(ValueError):
    """The page's markup or URL does not describe a valid node."""


def valid_name(name, limit=64):
    return 0 < len(name) <= limit and all(c in NAME_CHARS for c in name)


def cluster_from_path(path):
    """'/counter' -> 'counter', '/' -> 'index', '/a/b.html' -> 'a.b'."""
    parts = [p for p in path.split("/") if p]
    name = ".".join(parts) if parts else "index"
    if name.endswith(".html"):
        name = name[:-5]
    name = "".join(c if c in NAME_CHARS else "_" for c in name)[:64]
    return name or "index"


def node_from_host(host):
    """'wraft2.localhost' (or 'wraft2.example.org:8080') -> '2', else None."""
    label = host.split(".")[0]
    if label.startswith("wraft") and label[5:].isdigit():
        return str(int(label[5:]))
    return None


def cluster_name(attrs, path, query):
    """?cluster=NAME, else <raft-node cluster>, else the page's path."""
    cluster = query.get("cluster") or attrs.get("cluster") or cluster_from_path(path)
    if not valid_name(cluster):
        raise PageConfigError("cluster name %r: use 1-64 of A-Z a-z 0-9 _ . -" % cluster)
    return cluster


def ice_servers(attrs):
    """<raft-node ice-servers='[...]'>: a list of RTCIceServer dicts, or None
    (absent: the introducer's list)."""
    ice = attrs.get("ice-servers")
    if ice is not None:
        try:
            ice = json.loads(ice)
        except ValueError:
            raise PageConfigError("<raft-node ice-servers>: not JSON")
        if not isinstance(ice, list) or not all(isinstance(s, dict) for s in ice):
            raise PageConfigError("<raft-node ice-servers>: need a JSON list of objects")
    return ice


def ice_transport_policy(attrs, query):
    """?ice-transport-policy=relay (or the <raft-node> attribute): gather TURN
    relay candidates only, to check a TURN set-up; default "all"."""
    policy = query.get("ice-transport-policy") or attrs.get("ice-transport-policy") or "all"
    if policy not in ("all", "relay"):
        raise PageConfigError("ice-transport-policy %r: use all or relay" % policy)
    return policy


def resolve_config(attrs, host, path, query):
    """Everything start() needs from markup (attrs), location and ?query.
    Pure, so it is tested in CPython; raises PageConfigError on bad input."""
    # ?size= (for experiments and tests) wins over the markup; every window
    # of a cluster must start from the same size: it is the bootstrap
    # configuration, used until the log holds a membership change.
    size_text = query.get("size") or attrs.get("size") or str(DEFAULT_SIZE)
    if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_SIZE:
        raise PageConfigError("<raft-node size=%r>: need a cluster size 1..%d" % (size_text, MAX_SIZE))
    size = int(size_text)
    node = query.get("node") or node_from_host(host)
    if node is None:
        raise PageConfigError("no node id: open this page as wraftN.<host> or add ?node=N")
    if not node.isdigit() or int(node) > MAX_NODE_ID:
        raise PageConfigError("node id %r: must be a number 0..%d" % (node, MAX_NODE_ID))
    # Ids 0..size-1 are the bootstrap voters; any other id is a window that
    # is not a member yet: it connects and follows once a member adds it.
    node = str(int(node))
    cluster = cluster_name(attrs, path, query)
    ice = ice_servers(attrs)
    introducer = attrs.get("introducer") or "/ws"
    # A server started with --secret signs joins (signaling/PROTOCOL.md);
    # the window gets the secret from ?secret=, the hash being the app's.
    secret = query.get("secret") or None
    return {"size": size, "node": node, "voters": [str(i) for i in range(size)],
            "cluster": cluster, "ice_servers": ice, "introducer": introducer,
            "secret": secret, "ice_transport_policy": ice_transport_policy(attrs, query)}


def snapshot_thresholds(attrs):
    """Log compaction thresholds from <raft-node snapshot-entries="2000"
    snapshot-bytes="262144">: snapshot once that many applied entries (or
    bytes of them) sit in the log; "0" turns one off. Raises PageConfigError."""
    out = []
    for name, default in (("snapshot-entries", DEFAULT_SNAPSHOT_ENTRIES),
                          ("snapshot-bytes", DEFAULT_SNAPSHOT_BYTES)):
        text = attrs.get(name)
        if text is None:
            out.append(default)
        elif not text.isdigit() or int(text) > 1 << 30:
            raise PageConfigError("<raft-node %s=%r>: need a whole number (0 = off)" % (name, text))
        else:
            out.append(int(text))
    return out[0], out[1]


def ws_url(introducer, location):
    """Absolute ws(s):// URL for the introducer attribute."""
    if introducer.startswith("ws://") or introducer.startswith("wss://"):
        return introducer
    scheme = "wss:" if location.protocol == "https:" else "ws:"
    if introducer.startswith("//"):
        return scheme + introducer
    if not introducer.startswith("/"):
        introducer = "/" + introducer
    return scheme + "//" + location.host + introducer


class App:
    """The handle a page gets from start()."""

    def __init__(self, state, config):
        self.state = state
        self.config = config
        self.driver = None
        self.transport = None
        self.status_view = None
        self.error = None
        self.applied = []  # recent [index, command], in apply order
        self._renderers = []
        self._applied_hooks = []  # fn(first_index, entries)
        self._applied_seen = -1
        self._status_ms = -STATUS_EVERY_MS
        self._status_pending = False
        self._status_task = None
        self._hooks = []  # proxies of window.wraft, kept for the page's life

    @property
    def read_only(self):
        if self.driver is None or self.error is not None:
            return True
        return not self.driver.status()["quorum"]

    def on_change(self, fn):
        """Register fn(state), called after commands are applied (and once at
        start, after the restored log is replayed). Usable as a decorator."""
        self._renderers.append(fn)
        if self.driver is not None:
            self._call(fn)
        return fn

    def on_applied(self, fn):
        """Register fn(first_index, entries), called right after each batch
        of log entries is applied (entries are [term, client, seq, command];
        entry i sits at index first_index + i). Register it right after
        start(), before the stored log is replayed. Usable as a decorator."""
        self._applied_hooks.append(fn)
        return fn

    async def propose(self, command):
        if self.driver is None:
            from raft.browser.driver import ProposalError
            raise ProposalError("halted")
        return await self.driver.propose(command)

    def submit(self, command):
        """Start a proposal from a DOM event handler (which must not await)."""
        return asyncio.get_event_loop().create_task(self._submit(command))

    async def _submit(self, command):
        try:
            return await self.propose(command)
        except Exception as e:
            print("wraft: write failed: %s" % (e,))

    async def read(self):
        """Linearizable read: the state, once it reflects every write
        committed before the call."""
        if self.driver is None:
            from raft.browser.driver import ProposalError
            raise ProposalError("halted")
        await self.driver.read()
        return self.state

    async def change_membership(self, op, node):
        """Add a window as learner ("add_learner"), promote a learner to voter
        ("promote") or take a node out ("remove"), one change at a time.
        Returns the new configuration {"voters": [...], "learners": [...]};
        raises ProposalError (.error "unsafe", "invalid", "conf_pending",
        "no_leader", ...; .reason says why in words)."""
        if self.driver is None:
            from raft.browser.driver import ProposalError
            raise ProposalError("halted")
        return await self.driver.change_membership(op, str(node))

    async def _membership_action(self, op, node):
        # The status panel's callback: never raises, so the component needs
        # no Raft import; {"ok": config} or {"error": code, "reason": text}.
        try:
            return {"ok": await self.change_membership(op, node)}
        except Exception as e:
            return {"error": getattr(e, "error", None) or "failed",
                    "reason": getattr(e, "reason", None) or str(e)}

    def _call(self, fn):
        try:
            fn(self.state)
        except Exception as e:
            print("wraft: on_change handler failed: %r" % (e,))

    def _changed(self, driver):
        if self.status_view is not None:
            self._schedule_status(driver)
        applied = driver.node.applied_index
        if applied != self._applied_seen:
            self._applied_seen = applied
            for fn in self._renderers:
                self._call(fn)

    def _schedule_status(self, driver):
        # Rendering the status costs milliseconds of DOM work; under load the
        # driver changes state thousands of times a second. Render at most
        # every STATUS_EVERY_MS, and always once more after the last change.
        if self._status_pending:
            return
        wait = self._status_ms + STATUS_EVERY_MS - driver.clock()
        if wait <= 0:
            self._render_status(driver)
        else:
            self._status_pending = True
            self._status_task = asyncio.get_event_loop().create_task(self._status_later(driver, wait))

    async def _status_later(self, driver, wait_ms):
        await asyncio.sleep(wait_ms / 1000)
        self._status_pending = False
        self._render_status(driver)

    def _render_status(self, driver):
        self._status_ms = driver.clock()
        info = driver.status()
        info["cluster"] = self.config.get("cluster")
        info["ice_error"] = self.transport.ice_error if self.transport else None
        self.status_view.update(info)

    def _record_applied(self, first, entries):
        for fn in self._applied_hooks:
            fn(first, entries)
        # A write retried across a leader change can sit in the log twice;
        # the sessions applied it once, and so does this record.
        retried = self.driver.retried_indexes() if self.driver is not None else ()
        for i, e in enumerate(entries):
            if e[1] is not None and (not retried or first + i not in retried):  # skip no-ops
                self.applied.append([first + i, e[3]])
        if len(self.applied) > APPLIED_HISTORY:
            del self.applied[:len(self.applied) - APPLIED_HISTORY]

    def show_error(self, message):
        self.error = message
        print("wraft: " + message)
        if self.status_view is not None:
            self.status_view.update({"node": self.config.get("node", "?"), "running": False,
                                     "error": message, "size": self.config.get("size", 0),
                                     "cluster": self.config.get("cluster")})


NODE_ATTRS = ("size", "introducer", "ice-servers", "cluster", "snapshot-entries", "snapshot-bytes",
              "ice-transport-policy")
NODE_QUERY = ("node", "cluster", "secret", "size", "ice-transport-policy")


def markup_attrs(document, names=NODE_ATTRS):
    """The <raft-node> attributes among `names` that the page sets."""
    el = document.querySelector("raft-node")
    attrs = {}
    if el is not None:
        for name in names:
            if el.hasAttribute(name):
                attrs[name] = str(el.getAttribute(name))
    return attrs


def query_params(location, names=NODE_QUERY):
    """The ?query parameters among `names` that the URL has."""
    from js import URLSearchParams
    params = URLSearchParams.new(location.search)
    out = {}
    for name in names:
        v = params.get(name)
        if isinstance(v, str):
            out[name] = v
    return out


def start(state_class, on_change=None):
    """Build the node declared in the page and start it; returns an App.

    Problems (bad markup/URL, damaged storage) are shown on the page and in
    the status component; the returned App is then read-only with .error set.
    """
    from js import Math, performance, window
    from pyscript import document
    from components.status import ClusterStatus

    location = window.location
    state = state_class()
    app = App(state, {})
    if on_change is not None:
        app._renderers.append(on_change)
    app.status_view = ClusterStatus(on_action=app._membership_action)
    _expose_hooks(app)
    from raft.browser.client_app import start_client, wants_client_mode
    if wants_client_mode(document, location):  # ?client=1: no node (raft/CLIENT.md)
        return start_client(app, document, location)
    try:
        attrs = markup_attrs(document)
        app.config = resolve_config(attrs, str(location.host),
                                    str(location.pathname), query_params(location))
        snap_entries, snap_bytes = snapshot_thresholds(attrs)
    except PageConfigError as e:
        app.show_error(str(e))
        return app
    cfg = app.config

    from raft.config import Config
    from raft.node import Node
    from raft.browser.driver import Driver, GuardedState, node_storage, open_log
    from raft.browser.storage import LocalStorageKV
    from raft.browser.transport import Transport
    from raft.browser.clients import ClientHub
    from raft.client import is_client_id

    try:
        log, restored = open_log(LocalStorageKV(), cfg["cluster"], cfg["node"])
    except DamagedStorage as e:
        app.show_error("cannot start: " + str(e))
        return app
    if restored.repaired:
        print("wraft: " + restored.repaired)
    # Snapshot (if any) + the log after it; the first Ready re-applies the
    # entries up to commit, which rebuilds the app state (and app.applied).
    stored = node_storage(restored)

    def rng():
        return float(Math.random())

    try:
        node = Node(cfg["node"], cfg["voters"],
                    config=Config(snapshot_entries=snap_entries, snapshot_bytes=snap_bytes), rng=rng,
                    state_machine=GuardedState(state), storage=stored,
                    now_ms=int(performance.now()))
    except ValueError as e:  # e.g. a stored vote for a node this cluster lacks
        app.show_error("cannot start: stored state does not fit this cluster (%s)" % e)
        return app

    def clock():
        return int(performance.now())

    driver = Driver(node, log, None, clock, cfg["size"], restored=restored,
                    on_change=app._changed)
    driver.on_applied = app._record_applied
    try:
        transport = Transport(cluster=cfg["cluster"], node=cfg["node"],
                              on_message=driver.on_message, on_peer=driver.on_peer,
                              ws_url=ws_url(cfg["introducer"], location),
                              ice_servers=cfg["ice_servers"], secret=cfg["secret"],
                              ice_transport_policy=cfg["ice_transport_policy"],
                              # client windows get a channel only when they ask
                              wants=lambda peer: not is_client_id(peer))
    except (ValueError, RuntimeError) as e:
        app.show_error("cannot start: %s" % e)
        return app
    driver.transport = transport
    driver.clients = ClientHub(node, transport.send, backlog=transport.backlog,
                               timer=lambda: float(performance.now()))
    app.driver = driver
    app.transport = transport
    client = cfg["node"] + "-" + hex(int(Math.random() * 0xFFFFFFFF))[2:]
    driver.start(client)
    transport.start()
    return app


def _expose_hooks(app):
    """window.wraft: a small JSON-in/JSON-out surface for automation (the e2e
    tests) and the browser console. Promises resolve to JSON text."""
    from js import Function, Object, window
    from pyscript.ffi import create_proxy

    # JS makes the Promise and hands its resolve to Python, which calls it with
    # JSON text when the work is done (no Python-built Promise executors).
    as_promise = Function.new("py", "return (...a) => new Promise(resolve => py(resolve, ...a))")

    def spawn(resolve, coro_fn):
        async def run():
            try:
                out = await coro_fn()
            except Exception as e:
                out = {"error": getattr(e, "error", None) or repr(e)}
            resolve(json.dumps(out))
        asyncio.get_event_loop().create_task(run())

    def propose(resolve, text):
        command = json.loads(str(text))

        async def go():
            return {"ok": await app.propose(command)}
        spawn(resolve, go)

    def read(resolve):
        async def go():
            await app.read()
            return {"ok": app.state.snapshot()}
        spawn(resolve, go)

    def change_membership(resolve, op, node):
        # -> {"ok": config} or {"error": code, "reason": text}
        op, node = str(op), str(node)
        spawn(resolve, lambda: app._membership_action(op, node))

    def status():
        info = app.driver.status() if app.driver else {"error": app.error, "running": False}
        info["app_error"] = app.error
        if app.driver is not None:
            info["driver_stats"] = app.driver.stats
            info["node_stats"] = app.driver.node.stats
            info["transport_stats"] = app.transport.stats if app.transport else None
            info["introducer_up"] = bool(app.transport.introducer_up) if app.transport else False
            # the ClientHub of a member page (client windows it serves)
            hub = getattr(app.driver, "clients", None)
            info["client_hub_stats"] = hub.stats if hub is not None else None
        return json.dumps(info)

    def state():
        return json.dumps(app.state.snapshot())

    def applied():
        return json.dumps(app.applied)

    def send_raw(peer, text):
        # Puts raw text on the real data channel to `peer` (tests inject garbage).
        return bool(app.transport.send(str(peer), str(text))) if app.transport else False

    obj = Object.new()
    for name, fn in (("propose", propose), ("read", read),
                     ("changeMembership", change_membership)):
        proxy = create_proxy(fn)
        app._hooks.append(proxy)
        setattr(obj, name, as_promise(proxy))
    for name, fn in (("status", status), ("state", state), ("applied", applied),
                     ("sendRaw", send_raw)):
        proxy = create_proxy(fn)
        app._hooks.append(proxy)
        setattr(obj, name, proxy)
    window.wraft = obj
