"""The contract both page runtimes implement, and the pieces they share.

A page runs either a member (raft.runtime.driver.Driver: a raft.Node with
storage) or a client window (raft.runtime.client_driver.ClientDriver: a
raft.client.ClientSession attached to one member). The App handle
(raft.browser.app) talks to either through this contract:

    await rt.propose(command)         -> apply()'s result, or ProposalError
    await rt.read()                   linearizable read (returns once caught up)
    await rt.change_membership(op, node) -> {"voters", "learners"}, or ProposalError
    rt.status()                       plain dict for the status panel
    rt.diagnostics()                  counters for tests and the console
    rt.applied_index                  last log index applied to the state
    rt.on_applied = fn(first, entries)  after each applied batch
    rt.on_change = fn(rt)             after applies and role/connection changes
    rt.instrument(timings)            the instrumentation hook (raft/runtime/timings.py)
    rt.error, rt.running, rt.transport, rt.timings

Every call ends, within DEADLINE_MS, with its result or a ProposalError;
`.retryable` says whether the same call may succeed later (raft/API.md: the
command may still commit). Imports neither js nor pyscript.
"""

import asyncio

# raft/API.md: on these the command may still commit, or may be retried
# with the same (client id, seq) and then applies exactly once.
RETRYABLE = ("no_leader", "leadership_lost", "timeout", "too_many_pending")
RETRY_PAUSE_MS = 150
EXPIRY_CHECK_MS = 500  # how often waiters are checked against their deadline
# apply() raised: every replica stored this instead of a result.
FAILED = "wraft_command_failed"


class ProposalError(Exception):
    """A write or read the cluster did not accept; .error is the core's code."""

    def __init__(self, error, leader=None):
        super().__init__("%s (%s)" % (error, leader))
        self.error = error
        self.leader = leader  # the known leader, or the detail of command_failed
        # Why, in words (command_failed, and membership refusals: the core
        # sends a reason for unsafe / invalid / conf_pending).
        self.reason = leader if isinstance(leader, str) and error not in RETRYABLE else None

    @property
    def retryable(self):
        return self.error in RETRYABLE


class GuardedState:
    """The state machine the core sees: wraps the app's state class so a
    command its apply() rejects (raises on) becomes a failed write instead
    of an exception inside consensus (apply() is deterministic, so every
    replica fails the same way). The core gives it each command once, with
    its log index (apply_entry, raft/API.md): it hands the index on to a
    state class that has apply_entry(index, term, command) too, and tells
    on_apply(index, command) what ran where (app.applied)."""

    def __init__(self, state, on_apply=None):
        self.state = state
        self.on_apply = on_apply
        self._by_entry = getattr(state, "apply_entry", None) is not None

    def apply_entry(self, index, term, command):
        try:
            if self._by_entry:
                result = self.state.apply_entry(index, term, command)
            else:
                result = self.state.apply(command)
        except Exception as e:
            result = {FAILED: "%s: %s" % (type(e).__name__, e)}
        if self.on_apply is not None:
            self.on_apply(index, command)
        return result

    def snapshot(self):
        return self.state.snapshot()

    def restore(self, data):
        self.state.restore(data)


def new_client_id(rand):
    """"c" + 12 hex digits, new on every page load: the session id of a
    member's own writes and a client window's transport id alike (a session
    id must never be reused, raft/API.md)."""
    return "c%06x%06x" % (int(rand() * 0xFFFFFF), int(rand() * 0xFFFFFF))


class Waiter:
    """One request in flight; resolved by the runtime, or by expire() once
    its deadline passed. (MicroPython's asyncio has Event, no usable Future.)"""

    def __init__(self, deadline_ms):
        self.event = asyncio.Event()
        self.deadline_ms = deadline_ms
        self.error = None
        self.value = None

    def resolve(self, error, value=None):
        self.error, self.value = error, value
        self.event.set()


class Runtime:
    """What both runtimes share: hooks, the waiters of their calls with a
    deadline each, and the one retry loop. Subclasses set DEADLINE_MS and
    RETRY_MS and implement attempts, status() and applied_index."""

    DEADLINE_MS = 15000  # no call waits longer than this
    RETRY_MS = 8000      # retryable errors are retried while a call is this young

    def __init__(self, clock):
        self.clock = clock  # () -> int ms, monotonic
        self.on_change = None  # fn(runtime)
        self.on_applied = None  # fn(first_index, entries)
        self.transport = None
        self.timings = None  # raft.runtime.timings.Timings: set with instrument()
        self.error = None  # set when the runtime halts
        self.running = False
        self.last_write = None  # the page's latest propose: {"seq", "committed", "error", ...}
        self._proposals = {}  # seq -> Waiter
        self._reads = {}  # ctx -> Waiter
        self._expiry_ms = 0
        self._tasks = []

    def stop(self):
        self.running = False
        for t in self._tasks:
            t.cancel()

    def instrument(self, timings):
        """Turn the instrumentation hook on (a Timings) or off (None)."""
        self.timings = timings

    # ---- waiters --------------------------------------------------------
    def _wait(self, table, key, deadline_ms):
        waiter = table[key] = Waiter(deadline_ms)
        return waiter

    def _resolve(self, table, key, error, value=None):
        waiter = table.pop(key, None)
        if waiter is not None:
            waiter.resolve(error, value)
        return waiter is not None

    def expire(self, now):
        """End every wait past its deadline with "timeout" (retryable): no
        propose or read waits for ever, whatever the cluster does."""
        if now < self._expiry_ms:
            return
        self._expiry_ms = now + EXPIRY_CHECK_MS
        for table in (self._proposals, self._reads):
            for key in [k for k, w in table.items() if w.deadline_ms <= now]:
                table.pop(key).resolve("timeout")

    def _fail_all(self, error):
        for table in (self._proposals, self._reads):
            for key in list(table):
                table.pop(key).resolve(error)

    async def _until_done(self, attempt, retry=None):
        """attempt(deadline_ms) -> Waiter, or None when there is no room yet;
        run it until it succeeds, or fails for good: an error that
        retry(error, value, started_ms) rejects (default: RETRYABLE while
        the call is younger than RETRY_MS), or the deadline passed."""
        start = self.clock()
        deadline = start + self.DEADLINE_MS
        if retry is None:
            retry = self._retry
        while True:
            if self.error is not None:
                raise ProposalError("halted")
            waiter = attempt(deadline)
            if waiter is None:  # no room: wait, within the deadline
                if self.clock() >= deadline:
                    raise ProposalError("too_many_pending")
                await asyncio.sleep(RETRY_PAUSE_MS / 1000)
                continue
            self._kick()
            await waiter.event.wait()
            if waiter.error is None:
                v = waiter.value
                if isinstance(v, dict) and FAILED in v:
                    raise ProposalError("command_failed", v[FAILED])
                return v
            if self.clock() >= deadline or not retry(waiter.error, waiter.value, start):
                raise ProposalError(waiter.error, waiter.value)
            await asyncio.sleep(RETRY_PAUSE_MS / 1000)

    def _retry(self, error, value, started_ms):
        return error in RETRYABLE and self.clock() - started_ms < self.RETRY_MS

    def _kick(self):
        """A request was queued: let the runtime act on it soon."""

    # ---- the page's last write (the status panel shows it) ---------------
    async def _tracked_write(self, call, seq=None):
        """Await `call` (a write) as the page's latest write, for the status."""
        w = self.last_write = {"seq": seq, "index": None, "committed": False, "error": None}
        try:
            value = await call
        except ProposalError as e:
            w["error"] = e.error
            self._notify()
            raise
        w["committed"] = True
        self._notify()
        return value

    def _notify(self):
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception as e:  # a rendering bug must not stop the runtime
                print("wraft: on_change failed: %r" % (e,))

    # ---- the rest of the contract ----------------------------------------
    @property
    def applied_index(self):
        raise NotImplementedError

    def status(self):
        raise NotImplementedError

    def diagnostics(self):
        return {}

    async def change_membership(self, op, target):
        raise ProposalError("invalid", "this page cannot change membership")
