"""Client windows: the runtime of an app page opened with ?client=1 (or
<raft-node role="client">). Same app class, same App handle and window.wraft
surface as a member page, but no Raft node and nothing in localStorage: the
page attaches to one member over the data-channel transport and
- follows the committed log live (its state is the app state at the index it
  applied; app.on_change / app.on_applied run as on a member),
- proposes through the member (forwarded to the leader; retried with the same
  (client id, seq) on failure or on another member, so applied exactly once),
- reads linearizably (the member's ReadIndex, then our own stream catches up).
Protocol and rules: raft/CLIENT.md. The sans-IO session is raft/client.py;
this module only wires it to the transport, the clock and the page.
"""

import asyncio
import json

from raft.client import ClientSession, is_client_id
from raft.browser.driver import FAILED, GuardedState, ProposalError, _Waiter

TICK_MS = 50
# Our member's channel has been down this long (or it left the introducer's
# presence): attach to another member. Long enough for a reload to come back.
SWITCH_AFTER_MS = 3000
# A closed window's channel can look open for seconds (the transport's
# keepalive closes it after 6 s); its leaving the introducer's presence is
# quicker news. Absent this long while we are attached: move on.
ABSENT_SWITCH_MS = 1000
# Attached, but our member has known no leader for this long (cut off from
# the cluster, or a window that is not a member yet): try another member.
NO_QUORUM_SWITCH_MS = 6000
MAX_COMMAND_BYTES = 60000  # a command must fit one message (the core caps entries too)


def client_requested(attrs, query):
    """True when the page should run as a client: ?client=1 or role="client"."""
    flag = query.get("client")
    if flag is not None:
        return flag not in ("", "0", "false", "no")
    return attrs.get("role") == "client"


def resolve_client_config(attrs, path, query):
    """What a client page needs from markup and URL (pure; PageConfigError)."""
    from raft.browser.app import PageConfigError, cluster_name, ice_servers, ice_transport_policy
    cluster = cluster_name(attrs, path, query)
    via = query.get("via") or None
    if via is not None and not (via.isdigit() and len(via) <= 3):
        raise PageConfigError("?via=%r: need a member's node number" % via)
    ice = ice_servers(attrs)
    return {"cluster": cluster, "via": str(int(via)) if via else None, "ice_servers": ice,
            "introducer": attrs.get("introducer") or "/ws",
            "secret": query.get("secret") or None, "client": True,
            "ice_transport_policy": ice_transport_policy(attrs, query)}


def choose_member(members, via, avoid, r):
    """The member to attach to: ?via=N when present (unless it just failed
    us), else a random one, preferring any but `avoid`. None if none."""
    if via is not None and via in members and via != avoid:
        return via
    others = [m for m in members if m != avoid] or list(members)
    if not others:
        return None
    return sorted(others)[min(len(others) - 1, int(r * len(others)))]


def new_client_id(rand):
    """"c" + 12 hex digits: unique per page load (a session id must never be reused)."""
    return "c%06x%06x" % (int(rand() * 0xFFFFFF), int(rand() * 0xFFFFFF))


class ClientDriver:
    """Stands in for raft.browser.driver.Driver in a client page: the App
    handle calls propose/read/status on it, and reads `.node.applied_index`
    and `.node.stats` (here the ClientSession, which has both)."""

    def __init__(self, session, clock, rand, via=None, on_change=None):
        self.session = session
        self.node = session
        self.transport = None
        self.clock = clock
        self.rand = rand
        self.via = via
        self.on_change = on_change
        self.on_applied = None  # fn(first_index, entries), as on a member
        self.error = None
        self.running = False
        self.restored = None
        self.member = None      # the member we want (channel may not be up yet)
        self.member_since = 0   # chosen, or its channel lost, at this time
        self.present = []       # members the introducer lists
        self.absent_since = None  # our attached member left the presence at
        self.stuck_since = None   # attached to a member without a quorum since
        self._refused = 0
        self._proposals = {}
        self._reads = {}
        self.last_write = None
        self.stats = {"dropped_not_member": 0, "switches": 0, "send_failed": 0}
        self._tasks = []
        session.on_applied = self._applied
        session.on_restored = self._restored

    # ---- wiring -------------------------------------------------------
    def start(self):
        self.running = True
        self._tasks = [asyncio.get_event_loop().create_task(self._ticker())]
        self._notify()

    def stop(self):
        self.running = False
        for t in self._tasks:
            t.cancel()

    def wants(self, peer):
        """Transport policy: a channel to our chosen member only."""
        return peer == self.member

    def on_message(self, peer, text):
        if peer != self.session.member:
            self.stats["dropped_not_member"] += 1
            return
        self.session.receive(text, self.clock())
        self._flush()

    def on_peer(self, peer, up):
        now = self.clock()
        if up and peer == self.member:
            self.session.connected(peer, now)
            self._flush()
        elif up:
            self.transport.close_peer(peer)  # a member we left, offering again
        elif peer == self.session.member:
            self.session.disconnected(now)
            self.member_since = now
        self._notify()

    def on_presence(self, nodes):
        self.present = [n for n in nodes if not is_client_id(n)]
        self._check_member(self.clock())

    async def _ticker(self):
        while self.running:
            now = self.clock()
            self.session.tick(now)
            self._check_member(now)
            self._flush()
            await asyncio.sleep(TICK_MS / 1000)

    def _check_member(self, now):
        """Attach to a member; move to another when ours refuses us, left the
        presence, or has known no leader for long; or when the channel to
        the one we chose does not come up."""
        s = self.session
        refused = s.stats["refused"] > self._refused
        self._refused = s.stats["refused"]
        if s.member is not None:
            if not (refused or self._attached_in_trouble(now)):
                return
        elif not (refused or self.member is None or self._member_gone()
                  or now - self.member_since > SWITCH_AFTER_MS):
            return
        self.absent_since = self.stuck_since = None
        new = choose_member(self.present, self.via, self.member, self.rand())
        if new is None or new == self.member:
            self.member_since = now  # nobody else to try: wait for this one
            return
        old, self.member, self.member_since = self.member, new, now
        self.stats["switches"] += 1
        if s.member is not None:
            s.disconnected(now)
        if self.transport is not None:
            if old is not None:
                self.transport.close_peer(old)
            self.transport.refresh()
        self._notify()

    def _member_gone(self):
        return (self.member is not None and self.transport is not None
                and self.transport.introducer_up and self.member not in self.present)

    def _attached_in_trouble(self, now):
        """True once our member has been out of the presence (a closed page)
        for ABSENT_SWITCH_MS, or without a leader for NO_QUORUM_SWITCH_MS."""
        if self._member_gone():
            if self.absent_since is None:
                self.absent_since = now
        else:
            self.absent_since = None
        if self.session.writable:
            self.stuck_since = None
        elif self.stuck_since is None:
            self.stuck_since = now
        return ((self.absent_since is not None and now - self.absent_since >= ABSENT_SWITCH_MS)
                or (self.stuck_since is not None and len(self.present) > 1
                    and now - self.stuck_since >= NO_QUORUM_SWITCH_MS))

    def _flush(self):
        """Send what the session has to say; hand finished requests back."""
        out = self.session.take_outbox()
        member = self.session.member
        for text in out:
            try:
                ok = self.transport.send(member, text)
            except Exception:
                ok = False
            if not ok:
                self.stats["send_failed"] += 1
        done = self.session.take_done()
        for d in done:
            if d[0] == "p":
                waiter = self._proposals.pop(d[1], None)
                if waiter is not None:
                    waiter.resolve(d[2], d[3])
            else:
                waiter = self._reads.pop(d[1], None)
                if waiter is not None:
                    waiter.resolve(d[2], None)
        if done:
            self._notify()

    def retried_indexes(self):
        """As Driver.retried_indexes: retries in the last applied batch."""
        return self.session.retried_indexes

    def _applied(self, first, entries):
        if self.on_applied is not None:
            self.on_applied(first, entries)
        self._notify()

    def _restored(self, index):
        self._notify()

    # ---- what the App handle calls ------------------------------------
    async def propose(self, command):
        """Replicate `command` through our member; returns apply()'s result.
        Retries (same seq) until a final outcome or ClientSession.GIVE_UP_MS."""
        if self.error is not None:
            raise ProposalError("halted")
        text = json.dumps(command, separators=(",", ":"))
        if len(text.encode()) > MAX_COMMAND_BYTES:
            raise ProposalError("too_large")
        self.session.now = self.clock()
        seq = self.session.propose(command)
        while seq is None:  # too many in flight: wait for room
            await asyncio.sleep(TICK_MS / 1000)
            self.session.now = self.clock()
            seq = self.session.propose(command)
        waiter = _Waiter()
        self._proposals[seq] = waiter
        self.last_write = {"seq": seq, "committed": False, "error": None}
        self._flush()
        await waiter.event.wait()
        if waiter.error is None:
            if self.last_write.get("seq") == seq:
                self.last_write["committed"] = True
            self._notify()
            v = waiter.value
            if isinstance(v, dict) and FAILED in v:
                raise ProposalError("command_failed", v[FAILED])
            return v
        if self.last_write.get("seq") == seq:
            self.last_write["error"] = waiter.error
        self._notify()
        raise ProposalError(waiter.error, waiter.value)

    async def read(self):
        """Linearizable read: returns once our state reflects every write
        committed before the call (the member's ReadIndex, then our stream)."""
        if self.error is not None:
            raise ProposalError("halted")
        self.session.now = self.clock()
        ctx = self.session.read()
        waiter = _Waiter()
        self._reads[ctx] = waiter
        self._flush()
        await waiter.event.wait()
        if waiter.error is not None:
            raise ProposalError(waiter.error)

    async def change_membership(self, op, target):
        raise ProposalError("invalid", "a client window is not a member: change membership "
                                       "from a member's status panel")

    def status(self):
        s = self.session
        st = s.member_status  # [leader, quorum, voters] from our member
        voters = st[2] if st else 0
        info = {
            "node": s.client_id, "role": "client", "client_of": s.member,
            "wanted_member": self.member, "term": 0,
            "leader": st[0] if st else None, "commit": s.applied_index,
            "applied": s.applied_index,
            "quorum": s.writable and self.error is None,
            "peers": [s.member] if s.member is not None else [],
            "size": voters, "running": self.running, "error": self.error,
            "repaired": None, "last_write": None, "pending": len(s.pending),
        }
        w = self.last_write
        if w is not None:
            # A committed write is on a majority of the voters at least.
            info["last_write"] = {"committed": w["committed"], "error": w["error"],
                                  "on": voters // 2 + 1, "exact": False}
        return info

    def _notify(self):
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception as e:  # a rendering bug must not stop the client
                print("wraft: on_change failed: %r" % (e,))


CLIENT_ATTRS = ("role", "introducer", "ice-servers", "cluster")
CLIENT_QUERY = ("client", "cluster", "secret", "via")


def _client_attrs(document):
    from raft.browser.app import markup_attrs
    return markup_attrs(document, CLIENT_ATTRS)


def _client_query(location):
    from raft.browser.app import query_params
    return query_params(location, CLIENT_QUERY)


def wants_client_mode(document, location):
    return client_requested(_client_attrs(document), _client_query(location))


def start_client(app, document, location):
    """Run `app` (an App whose state object exists) as a client window."""
    from js import Math, performance
    from raft.browser.app import PageConfigError, ws_url
    from raft.browser.transport import Transport

    try:
        cfg = resolve_client_config(_client_attrs(document), str(location.pathname),
                                    _client_query(location))
    except PageConfigError as e:
        app.show_error(str(e))
        return app

    def rand():
        return float(Math.random())

    def clock():
        return int(performance.now())

    client_id = new_client_id(rand)
    cfg["node"] = client_id
    app.config = cfg
    session = ClientSession(client_id, GuardedState(app.state), now_ms=clock())
    driver = ClientDriver(session, clock, rand, via=cfg["via"], on_change=app._changed)
    driver.on_applied = app._record_applied
    try:
        transport = Transport(cluster=cfg["cluster"], node=client_id,
                              on_message=driver.on_message, on_peer=driver.on_peer,
                              on_presence=driver.on_presence,
                              ws_url=ws_url(cfg["introducer"], location),
                              ice_servers=cfg["ice_servers"], secret=cfg["secret"],
                              ice_transport_policy=cfg["ice_transport_policy"],
                              wants=driver.wants, ask_after_ms=0)
    except (ValueError, RuntimeError) as e:
        app.show_error("cannot start: %s" % e)
        return app
    driver.transport = transport
    app.driver = driver
    app.transport = transport
    driver.start()
    transport.start()
    return app
