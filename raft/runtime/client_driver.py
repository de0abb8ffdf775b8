"""The client runtime: what an app page opened with ?client=1 (or
<raft-node role="client">) runs instead of a node (raft/CLIENT.md). Same app
class, same App handle and window.wraft surface as a member page, but no Raft
node and nothing in localStorage: the page attaches to one member over the
data-channel transport and
- follows the committed log live (its state is the app state at the index it
  applied; on_change / on_applied run as on a member),
- proposes through the member (forwarded to the leader; retried with the same
  (client id, seq) on failure or on another member, so applied exactly once),
- reads linearizably (the member's ReadIndex, then our own stream catches up).
The sans-IO session is raft/client.py; this module wires it to the
transport and the clock, and picks the member. Imports neither js nor pyscript.
"""

import asyncio
import json

from raft.client import ClientSession, is_client_id
from raft.codec import SEP
from raft.runtime.contract import ProposalError, Runtime

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


def choose_member(members, via, avoid, r):
    """The member to attach to: ?via=N when present (unless it just failed
    us), else a random one, preferring any but `avoid`. None if none."""
    if via is not None and via in members and via != avoid:
        return via
    others = [m for m in members if m != avoid] or list(members)
    if not others:
        return None
    return sorted(others)[min(len(others) - 1, int(r * len(others)))]


def _session_retries(error, value, started_ms):
    # The session already retried with the same seq until it gave up; a new
    # attempt would be a new seq, i.e. maybe a second copy of the command.
    return False


class ClientDriver(Runtime):
    """The client runtime: drives `session` (raft.client.ClientSession) over
    the transport (set after construction: send, close_peer, refresh,
    introducer_up), attached to one member at a time."""

    # The session gives up on a request after GIVE_UP_MS; the runtime's own
    # deadline only catches what it never answers (e.g. a read whose index
    # our stream never reaches).
    DEADLINE_MS = ClientSession.GIVE_UP_MS + 5000

    def __init__(self, session, clock, rand, via=None, on_change=None):
        Runtime.__init__(self, clock)
        self.session = session
        self.rand = rand
        self.via = via
        self.on_change = on_change
        self.member = None      # the member we want (channel may not be up yet)
        self.member_since = 0   # chosen, or its channel lost, at this time
        self.present = []       # members the introducer lists
        self.absent_since = None  # our attached member left the presence at
        self.stuck_since = None   # attached to a member without a quorum since
        self._refused = 0
        self.stats = {"dropped_not_member": 0, "switches": 0, "send_failed": 0}
        session.on_applied = self._applied
        session.on_restored = self._restored

    # ---- wiring -------------------------------------------------------
    def start(self):
        self.running = True
        self._tasks = [asyncio.get_event_loop().create_task(self._ticker())]
        self._notify()

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
            self.expire(now)
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
                self._resolve(self._proposals, d[1], d[2], d[3])
            else:
                self._resolve(self._reads, d[1], d[2])
        if done:
            self._notify()

    def _applied(self, first, entries):
        if self.on_applied is not None:
            self.on_applied(first, entries)
        self._notify()

    def _restored(self, index):
        self._notify()

    # ---- requests from the page ----------------------------------------
    @property
    def applied_index(self):
        return self.session.applied_index

    def _kick(self):
        self._flush()

    async def propose(self, command):
        """Replicate `command` through our member; returns apply()'s result.
        The session retries (same seq) until a final outcome or its
        GIVE_UP_MS; while it has too many in flight, this waits for room."""
        text = json.dumps(command, separators=SEP)
        if len(text.encode()) > MAX_COMMAND_BYTES:
            raise ProposalError("too_large")

        def attempt(deadline):
            self.session.now = self.clock()
            seq = self.session.propose(command)
            return None if seq is None else self._wait(self._proposals, seq, deadline)
        return await self._tracked_write(self._until_done(attempt, _session_retries))

    async def read(self):
        """Linearizable read: returns once our state reflects every write
        committed before the call (the member's ReadIndex, then our stream)."""
        def attempt(deadline):
            self.session.now = self.clock()
            return self._wait(self._reads, self.session.read(), deadline)
        await self._until_done(attempt, _session_retries)

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

    def diagnostics(self):
        tr = self.transport
        return {"driver_stats": self.stats, "node_stats": self.session.stats,
                "transport_stats": getattr(tr, "stats", None),
                "introducer_up": bool(getattr(tr, "introducer_up", False)),
                "client_hub_stats": None}
