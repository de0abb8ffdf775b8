"""End-to-end: client windows (?client=1) outside a three-window counter
cluster, in headless Chromium inside scripts/in-netns (raft/CLIENT.md).

Members are wraft0/1/2.localhost (the Cluster helper of test_node_cluster);
each client window is a fresh browser context on the same counter page with
?client=1, attached to one member over a data channel. Writes are distinct
integers, so "every write applied exactly once" is checked on each member's
window.wraft.applied() list.
"""

import json

import pytest

from browser_helpers import MPY_LOAD_MS, wait_until
from test_node_cluster import ELECT_S, make_cluster, ok_values, start_three  # noqa: F401

pytestmark = pytest.mark.browser


def open_client(open_window, c, via=None, host=0):
    url = "%s/counter?cluster=%s&client=1%s" % (c.server.base(host), c.name,
                                                "&via=%s" % via if via is not None else "")
    w = open_window(url, wait_for="html[data-raft-role]", timeout=MPY_LOAD_MS)
    wait_until(lambda: attr(w, "data-raft-role") == "client"
               and attr(w, "data-raft-readonly") == "false",
               timeout=ELECT_S, what="client window attached and writable")
    return w


def attr(w, name):
    return w.page.evaluate("n => document.documentElement.getAttribute(n)", name)


def cstatus(w):
    return json.loads(w.page.evaluate("wraft.status()"))


def cstate(w):
    return json.loads(w.page.evaluate("wraft.state()"))


def start_writes(w, values, name="pending"):
    """Start proposals in the page without waiting; collect() gets them."""
    w.page.evaluate("([cs, n]) => { window[n] = Promise.all(cs.map(c => wraft.propose(c))); }",
                    [[json.dumps(v) for v in values], name])


def collect(w, name="pending", timeout=60_000):
    out = w.page.evaluate("n => window[n]", name)
    return [json.loads(x) for x in out]


def counts(applied, values):
    commands = [cmd for _, cmd in applied]
    return {v: commands.count(v) for v in values}


def executed_sums(order):
    """{write: counter right after it} if each write in the log `order` is
    executed once, at its first place (a later copy of a retried command is
    skipped by the session table: Raft thesis 6.3)."""
    total, out = 0, {}
    for v in order:
        if v not in out:
            total += v
            out[v] = total
    return out


def test_client_writes_apply_exactly_once_across_a_leader_change(server, make_cluster,
                                                                 open_window):
    c = start_three(make_cluster, server, "cl-once")
    lead = c.leader()
    cw = open_client(open_window, c, via=lead)   # attached to the leader, which will go
    assert cstatus(cw)["client_of"] == str(lead)
    wait_until(lambda: "client of node %d" % lead in cw.page.inner_text("raft-status"),
               what="the status shows which member serves the client")
    first = [1000 + k for k in range(10)]
    results = ok_values([json.loads(x) for x in cw.page.evaluate(
        "cs => Promise.all(cs.map(c => wraft.propose(c)))", [json.dumps(v) for v in first])])
    more = [2000 + k for k in range(20)]
    start_writes(cw, more)
    c.close(lead)                                # the leader goes with writes in flight
    survivors = c.alive()
    new_lead = c.leader(survivors)
    assert new_lead != lead
    results += ok_values(collect(cw))            # every write gets its result
    late = [3000 + k for k in range(5)]
    results += ok_values([json.loads(x) for x in cw.page.evaluate(
        "cs => Promise.all(cs.map(c => wraft.propose(c)))", [json.dumps(v) for v in late])])
    everything = first + more + late
    order = c.same_log(everything, timeout=30)
    for i in survivors:
        # A retry may sit in the log twice; applied() lists what was applied.
        assert all(n == 1 for n in counts(c.applied(i), everything).values()), i
    # Executed exactly once: each result is the counter right after that
    # write's first place in the log, and the final counter is the sum of
    # all writes (a second execution would shift both).
    sums = executed_sums(order)
    assert results == [sums[v] for v in everything]
    for i in survivors:
        assert c.state(i) == sum(everything)
    st = cstatus(cw)
    assert st["driver_stats"]["switches"] >= 2          # chose the leader, then moved
    # The client moved to a surviving member and follows the same state.
    st = cstatus(cw)
    assert st["client_of"] in [str(i) for i in survivors]
    wait_until(lambda: cstate(cw) == c.state(survivors[0]), what="client state converges")


def test_client_reads_linearizably_and_follows_changes_live(server, make_cluster, open_window):
    c = start_three(make_cluster, server, "cl-read")
    lead = c.leader()
    follower = (lead + 1) % 3
    cw = open_client(open_window, c, via=follower)
    writer = (lead + 2) % 3                      # a member the client is not attached to
    for v in (5, 7, 11):
        ok_values([c.propose(writer, v)])
        # A read that starts after the write was acknowledged sees it.
        got = json.loads(cw.page.evaluate("wraft.read()"))
        assert got == {"ok": c.state(writer)}, got
    # Live: the client's state (and the page) update with no action of its own.
    ok_values(c.propose_many(writer, [100, 200]))
    expect = c.state(writer)
    wait_until(lambda: cstate(cw) == expect, what="client follows the log")
    wait_until(lambda: cw.page.inner_text("#count") == str(expect), what="client page re-rendered")
    assert [cmd for _, cmd in json.loads(cw.page.evaluate("wraft.applied()"))][-2:] == [100, 200]


def test_several_clients_at_once_leave_the_members_mesh_alone(server, make_cluster, open_window):
    c = start_three(make_cluster, server, "cl-many")
    lead = c.leader()
    term = c.status(lead)["term"]
    clients = [open_client(open_window, c, host=k) for k in range(3)]
    writes = {k: [10000 * (k + 1) + j for j in range(8)] for k in range(3)}
    for k, cw in enumerate(clients):
        start_writes(cw, writes[k])
    for k, cw in enumerate(clients):
        assert all("ok" in o for o in collect(cw)), k
    everything = sum(writes.values(), [])
    c.same_log(everything)
    for i in range(3):
        assert counts(c.applied(i), everything) == {v: 1 for v in everything}
        peers = c.status(i)["peers"]
        assert [str(j) for j in range(3) if j != i] == sorted(p for p in peers if p.isdigit())
    # Members never dialled clients: each client has one channel, to its member.
    for cw in clients:
        st = cstatus(cw)
        assert st["peers"] == [st["client_of"]]
    assert c.leader() == lead and c.status(lead)["term"] == term  # no election meanwhile
    served = sum(c.status(i)["client_hub_stats"]["clients"] for i in range(3))
    assert served == 3
    final = c.state(lead)
    for cw in clients:
        wait_until(lambda: cstate(cw) == final, what="every client converges")


def test_malformed_client_messages_are_dropped_and_counted(server, make_cluster, open_window):
    c = start_three(make_cluster, server, "cl-junk")
    lead = c.leader()
    member = (lead + 1) % 3
    cw = open_client(open_window, c, via=member)
    junk = ["", "nope", "[1", '["wc",1,"p",0,1]', '["wc",9,"sub",1]',
            '["wc",1,"e",1,0,[]]',
            # a Raft vote request from a client channel: never reaches the node
            json.dumps([1, "v", cstatus(cw)["node"], str(member), 999, 999, 998])]
    for text in junk:
        assert cw.page.evaluate("([p, t]) => wraft.sendRaw(p, t)", [str(member), text])
    wait_until(lambda: c.status(member)["client_hub_stats"]["dropped_malformed"] >= len(junk),
               what="member counted every bad message")
    st = c.status(member)
    assert st["term"] < 999 and st["error"] is None and st["node_stats"].get("dropped_malformed", 0) == 0
    # The member, and the client on it, keep working.
    assert ok_values([json.loads(cw.page.evaluate("c => wraft.propose(c)", "42"))]) == [c.state(lead)]
    assert c.leader() == lead
