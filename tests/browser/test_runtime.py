"""The runtime contract (raft/runtime/contract.py) in CPython: both runtimes
offer the same surface, and every propose and read ends within the runtime's
deadline with a result or a retryable error, whatever the cluster does."""

import asyncio
import time

import pytest

from raft import client as proto
from raft.runtime.client_driver import ClientDriver
from raft.runtime.driver import Driver
from raft.runtime.contract import FAILED, RETRYABLE, GuardedState, ProposalError, Runtime
from raft.runtime.timings import LABELS, Timings
from raft.client import ClientSession
from raft.records import MemoryKV
from raft.sessions import Sessions, apply_entries

from test_node_driver import Net, in_own_loop, leaders, make, wait_for

CONTRACT = ("propose", "read", "change_membership", "status", "diagnostics",
            "applied_index", "on_applied", "on_change", "error",
            "running", "transport", "timings", "instrument")


def test_retryable_errors_are_the_ones_raft_api_md_names():
    # raft/API.md, Ready.results: "On no_leader/leadership_lost/timeout/
    # too_many_pending the command may still commit or may be retried".
    assert set(RETRYABLE) == {"no_leader", "leadership_lost", "timeout", "too_many_pending"}
    assert ProposalError("too_many_pending").retryable
    assert not ProposalError("invalid", "bad op").retryable


@in_own_loop
async def test_both_runtimes_implement_the_contract():
    session = ClientSession("cabcd1", GuardedState(object()))
    client = ClientDriver(session, lambda: 0, lambda: 0.0)
    net = Net()
    member = make(net, "0", MemoryKV())
    try:
        for rt in (member, client):
            assert isinstance(rt, Runtime)
            for name in CONTRACT:
                assert hasattr(rt, name), (type(rt).__name__, name)
            assert rt.applied_index == 0
            assert set(rt.diagnostics()) == {"driver_stats", "node_stats", "transport_stats",
                                             "introducer_up", "client_hub_stats"}
    finally:
        member.stop()


class Plain:
    def __init__(self):
        self.ops = []

    def apply(self, command):
        if command == "boom":
            raise ValueError("no boom here")
        self.ops.append(command)
        return len(self.ops)


class Placed(Plain):
    def apply_entry(self, index, term, command):
        if command == "boom":
            raise ValueError("no boom here")
        self.ops.append([index, term, command])
        return index


def test_guarded_state_gives_each_command_once_with_its_place():
    """What the sessions apply, once per write at its first index: to the
    app's apply_entry when it has one, else apply; told to on_apply (what
    app.applied lists); a command apply() rejects is a failed write."""
    batch = [[1, "c", 1, "x"], [1, None, 0, None], [1, "c", 1, "x"], [2, "c", 2, "boom"],
             [2, "c", 3, "y"]]
    for state, want in ((Plain(), ["x", "y"]), (Placed(), [[1, 1, "x"], [5, 2, "y"]])):
        seen, results = [], []
        guard = GuardedState(state, lambda index, command: seen.append([index, command]))
        apply_entries(Sessions(), 1, batch, guard, {("c", 2): None, ("c", 3): None}, results)
        assert state.ops == want
        assert seen == [[1, "x"], [4, "boom"], [5, "y"]]  # the copy at 3 and the no-op: not
        failed = results[0][3]
        assert results[0][:3] == ["c", 2, None] and "no boom here" in failed[FAILED]
        assert results[1] == ["c", 3, None, 5 if isinstance(state, Placed) else 2]



class Deadline:
    """Shortens a runtime class's deadline for one test."""

    def __init__(self, cls, ms):
        self.cls, self.ms = cls, ms

    def __enter__(self):
        self.saved = self.cls.DEADLINE_MS
        self.cls.DEADLINE_MS = self.ms

    def __exit__(self, *exc):
        self.cls.DEADLINE_MS = self.saved


async def ends_within(coro, seconds):
    """The call's outcome (value or exception), or AssertionError if it hangs."""
    t0 = time.monotonic()
    try:
        out = await asyncio.wait_for(coro, seconds)
    except asyncio.TimeoutError:
        raise AssertionError("still waiting after %.1f s" % seconds)
    except ProposalError as e:
        out = e
    return out, time.monotonic() - t0


@in_own_loop
async def test_a_member_read_or_write_the_core_never_answers_times_out():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    try:
        await wait_for(lambda: len(leaders(net)) == 1)
        follower = next(d for d in ds if d.node.role != "leader")
        # A follower that got its read index and was then cut off, or a lost
        # forward: the core keeps the request and never answers it.
        follower.node.read_index = lambda ctx: None
        follower.node.propose = lambda client, seq, command: None
        with Deadline(Driver, 600):
            for call in (follower.read(), follower.propose(1)):
                out, took = await ends_within(call, 5)
                assert isinstance(out, ProposalError) and out.error == "timeout" and out.retryable
                assert 0.5 < took < 2.0
        assert follower.last_write["error"] == "timeout" and not follower.last_write["committed"]
        assert not follower._proposals and not follower._reads  # nothing left waiting
        assert await ds[0].propose(7) >= 1  # the cluster itself is fine
    finally:
        for d in ds:
            d.stop()


class FakeTransport:
    introducer_up = True

    def send(self, peer, text):
        return True

    def close_peer(self, peer):
        pass

    def refresh(self):
        pass


@in_own_loop
async def test_a_client_read_whose_index_its_stream_never_reaches_times_out():
    session = ClientSession("cabcd1", GuardedState(object()))
    now = lambda: int(time.monotonic() * 1000)  # noqa: E731
    d = ClientDriver(session, now, lambda: 0.0)
    d.transport = FakeTransport()
    d.start()
    try:
        d.on_presence(["0"])
        d.on_peer("0", True)
        d.on_message("0", proto.encode(["st", "0", 1, 3]))
        with Deadline(ClientDriver, 600):
            read = asyncio.ensure_future(d.read())
            await asyncio.sleep(0.05)
            # The member grants index 5, and our stream never gets there.
            d.on_message("0", proto.encode(["rr", 1, None, 5]))
            out, took = await ends_within(read, 5)
        assert isinstance(out, ProposalError) and out.error == "timeout" and out.retryable
        assert took < 2.0 and not d._reads
    finally:
        d.stop()


@in_own_loop
async def test_a_client_with_no_room_waits_for_room_within_its_deadline():
    session = ClientSession("cabcd1", GuardedState(object()))
    session.MAX_PENDING = 0  # the session never has room
    d = ClientDriver(session, lambda: int(time.monotonic() * 1000), lambda: 0.0)
    d.transport = FakeTransport()
    d.start()
    try:
        with Deadline(ClientDriver, 400):
            out, took = await ends_within(d.propose(1), 5)
        assert isinstance(out, ProposalError) and out.error == "too_many_pending"
        assert 0.3 < took < 2.0
    finally:
        d.stop()


@in_own_loop
async def test_the_drivers_instrumentation_hook():
    net, kvs = Net(), [MemoryKV() for _ in range(3)]
    ds = [make(net, str(i), kvs[i]) for i in range(3)]
    try:
        await wait_for(lambda: len(leaders(net)) == 1)
        lead = leaders(net)[0]
        t = Timings(time.perf_counter)
        lead.instrument(t)
        for i in range(5):
            await lead.propose(i)
        assert set(t.calls) == set(LABELS) and t.calls["propose"] == 5
        assert t.calls["drain"] > 0 and t.calls["persist"] > 0 and t.calls["transport_send"] > 0
        assert t.ms["drain"] >= t.ms["persist"] and "ar" in t.arrived  # a follower's ack
        lead.instrument(None)
        calls = dict(t.calls)
        await lead.propose(9)
        assert t.calls == calls and lead.timings is None  # off: nothing counted
        # arrivals only: the loop takes its usual path, no phase is counted
        arrivals = Timings(time.perf_counter, phases=False)
        lead.instrument(arrivals)
        await lead.propose(10)
        assert "ar" in arrivals.arrived and set(arrivals.calls.values()) == {0}
        lead.instrument(None)
    finally:
        for d in ds:
            d.stop()
