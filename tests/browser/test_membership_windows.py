"""Membership changes in the browser (issue 7): the driver's change_membership
in CPython, then end-to-end windows growing and shrinking a cluster through
the status component's buttons (real clicks, inline confirmation).

Browser tests run only inside scripts/in-netns:
    scripts/in-netns .venv/bin/python -m pytest tests/browser/test_membership_windows.py -x -q
Each window is its own origin (wraftN.localhost) in its own browser context;
each test uses its own ?cluster= name. The counter app applies integer
writes; window.wraft.applied() lists [index, command] pairs.
"""

import asyncio
import json
import time

import pytest

from browser_helpers import MPY_LOAD_MS, wait_until
from raft.runtime.contract import ProposalError
from raft.records import MemoryKV
from test_node_driver import Net, in_own_loop, leaders, make, wait_for

ELECT_S = 25  # elections take 1.5-3 s; leave room for page loads on 2 busy cores


# ---- the driver in CPython -------------------------------------------------

@in_own_loop
async def test_driver_grows_3_to_4_and_shrinks_back_with_the_leader_removed():
    net = Net()
    ds = [make(net, str(i), MemoryKV()) for i in range(4)]  # "3" is outside the 3 voters
    for d in ds:
        d.transport.presence = ["0", "1", "2", "3", "c1f2a"]  # c...: a client window
    await wait_for(lambda: len(leaders(net)) == 1)
    lead = leaders(net)[0]
    out = ds[3]
    assert out.status()["membership"] == "none" and out.node.role == "follower"
    assert out.status()["present"] == ["0", "1", "2", "3"]  # clients are not candidates
    assert await lead.propose(1) == 1
    # A follower's change is forwarded to the leader.
    follower = next(d for d in ds[:3] if d is not lead)
    cfg = await follower.change_membership("add_learner", "3")
    assert cfg == {"voters": ["0", "1", "2"], "learners": ["3"]}
    await wait_for(lambda: out.status()["membership"] == "learner" and out.app_state.ops == [1])
    info = lead.status()
    assert info["peer_status"]["3"]["voter"] is False and info["learners"] == ["3"]
    await wait_for(lambda: lead.status()["peer_status"]["3"]["match"] >= lead.node.commit_index)
    assert await follower.change_membership("promote", "3") == \
        {"voters": ["0", "1", "2", "3"], "learners": []}
    await wait_for(lambda: out.status()["membership"] == "voter")
    assert lead.status()["size"] == 4
    # Writes now need 3 of 4.
    assert await out.propose(2) == 2
    # Remove the leader itself (from its own page): it steps down once the
    # change commits, and the other three elect a new leader.
    cfg = await lead.change_membership("remove", lead.node.id)
    assert lead.node.id not in cfg["voters"] and len(cfg["voters"]) == 3
    await wait_for(lambda: lead.node.role != "leader", timeout=5)
    await wait_for(lambda: len(leaders(net)) == 1 and leaders(net)[0] is not lead, timeout=10)
    assert lead.status()["membership"] == "none"
    rest = [d for d in ds if d is not lead]
    assert await rest[0].propose(3) == 3
    await wait_for(lambda: all(d.app_state.ops == [1, 2, 3] for d in rest))
    for d in ds:
        d.stop()


@in_own_loop
async def test_driver_refusals_are_errors_with_reasons_and_change_nothing():
    net = Net()
    ds = [make(net, str(i), MemoryKV()) for i in range(3)]
    await wait_for(lambda: len(leaders(net)) == 1)
    lead = leaders(net)[0]
    await lead.propose(1)
    others = [d for d in ds if d is not lead]
    for op, target, error, why in [("promote", "1", "invalid", "not a learner"),
                                   ("add_learner", others[0].node.id, "invalid", "already a voter"),
                                   ("remove", "9", "invalid", "not a member"),
                                   ("rename", "1", "invalid", "unknown membership operation"),
                                   ("remove", "", "invalid", "target must be a node id"),
                                   ("add_learner", "x" * 65, "invalid", "target must be a node id")]:
        with pytest.raises(ProposalError) as e:
            await others[1].change_membership(op, target)
        assert e.value.error == error and why in e.value.reason, (op, e.value)
    # One voter away: removing another live one would leave no live majority.
    net.cut.add(others[0].node.id)
    await wait_for(lambda: not lead.status()["peer_status"][others[0].node.id]["recent"], timeout=5)
    with pytest.raises(ProposalError) as e:
        await lead.change_membership("remove", others[1].node.id)
    assert e.value.error == "unsafe"
    assert e.value.reason == "removing %s would leave 1 live voter of 2 (a majority needs 2)" \
        % others[1].node.id
    assert lead.node.voters == ["0", "1", "2"] and await lead.propose(2) == 2
    for d in ds:
        d.stop()


class SlowLinkNet(Net):
    """Messages to and from `slow` take `delay_s` (a learner on a slow link)."""

    def __init__(self, slow, delay_s):
        super().__init__()
        self.slow, self.delay_s = slow, delay_s

    def deliver(self, src, dst, text):
        if self.slow in (src, dst):
            asyncio.get_event_loop().call_later(self.delay_s, Net.deliver, self, src, dst, text)
        else:
            Net.deliver(self, src, dst, text)


@in_own_loop
async def test_driver_retries_a_promotion_while_the_learner_is_a_little_behind():
    net = SlowLinkNet("3", 0.1)
    # Timeouts well above the slow link's round trip: the learner stays "recent".
    timing = dict(election_min_ms=1000, election_max_ms=1500, heartbeat_ms=50)
    ds = [make(net, str(i), MemoryKV(), timing=timing) for i in range(4)]
    await wait_for(lambda: len(leaders(net)) == 1, timeout=10)
    lead = leaders(net)[0]
    await lead.change_membership("add_learner", "3")
    await wait_for(lambda: ds[3].node.applied_index >= lead.node.commit_index)
    calls = []
    real = lead.node.change_membership
    lead.node.change_membership = lambda *a: calls.append(a) or real(*a)
    # A write commits on the voters at once; the learner has it 0.2 s later.
    await lead.propose(1)
    cfg = await lead.change_membership("promote", "3")
    assert cfg["voters"] == ["0", "1", "2", "3"]
    assert len(calls) >= 2, "the first attempt should have found the learner behind"
    assert len(set((c[0], c[1]) for c in calls)) == 1  # one (client, seq) throughout
    for d in ds:
        d.stop()


# ---- windows ---------------------------------------------------------------

class Windows:
    """App windows by node id, each in its own browser context (its own
    localStorage); every window of one test uses the same cluster name."""

    def __init__(self, browser, server, tag, path="/counter", query=""):
        self.browser, self.server, self.path, self.query = browser, server, path, query
        self.cluster = "%s-%d" % (tag, int(time.time() * 1000) % 10**8)
        self.contexts, self.pages, self.logs = {}, {}, {}

    def open(self, i, wait=True):
        ctx = self.contexts.get(i) or self.browser.new_context()
        self.contexts[i] = ctx
        page = ctx.new_page()
        log = self.logs.setdefault(i, [])
        page.on("console", lambda m: log.append("[%s] %s" % (m.type, m.text)))
        page.on("pageerror", lambda e: log.append("[pageerror] %s" % e))
        page.goto("%s%s?cluster=%s%s" % (self.server.base(i), self.path, self.cluster, self.query))
        self.pages[i] = page
        if wait:
            self.wait_loaded(i)
        return page

    def wait_loaded(self, i):
        self.pages[i].wait_for_selector("html[data-raft-membership]", state="attached",
                                        timeout=MPY_LOAD_MS)

    def close(self, i):
        self.pages.pop(i).close()

    def attr(self, i, name):
        return self.pages[i].evaluate("n => document.documentElement.getAttribute(n)", name)

    def status(self, i):
        return json.loads(self.pages[i].evaluate("wraft.status()"))

    def propose(self, i, command):
        return json.loads(self.pages[i].evaluate("c => wraft.propose(c)", json.dumps(command)))

    def change(self, i, op, target):
        return json.loads(self.pages[i].evaluate("([o, t]) => wraft.changeMembership(o, t)",
                                                 [op, str(target)]))

    def state(self, i):
        return json.loads(self.pages[i].evaluate("wraft.state()"))

    def applied(self, i):
        return json.loads(self.pages[i].evaluate("wraft.applied()"))

    def one_leader(self, among, timeout=ELECT_S):
        """Exactly one leader among `among`, followed by all of them, all writable."""
        def check():
            infos = {i: self.status(i) for i in among}
            leads = [i for i, s in infos.items() if s["role"] == "leader"]
            if len(leads) != 1:
                return None
            ok = all(s["leader"] == str(leads[0]) and s["quorum"] for s in infos.values())
            return (leads[0],) if ok else None
        return wait_until(check, timeout=timeout, what="one leader among %s" % (among,))[0]

    def wait_attr(self, ids, name, value, timeout=20):
        # The status is redrawn at most every 100 ms: poll.
        wait_until(lambda: all(self.attr(i, name) == value for i in ids), timeout=timeout,
                   what="%s=%r on %s" % (name, value, ids))

    def click_change(self, i, op, target, timeout=40):
        """Click the op's button for `target` in window i's status panel,
        check the confirmation, confirm, and return the outcome (kind, text)."""
        page = self.pages[i]
        page.click('raft-status [data-raft-action="%s"][data-raft-target="%s"]' % (op, target),
                   timeout=20_000)
        question = page.wait_for_selector("raft-status [data-raft-question]",
                                          timeout=5_000).inner_text()
        page.click('raft-status [data-raft-action="confirm"]', timeout=5_000)
        el = page.wait_for_selector("raft-status [data-raft-outcome]", timeout=timeout * 1000)
        kind = el.get_attribute("data-raft-outcome")
        text = el.query_selector("[data-raft-outcome-text]").inner_text()
        page.click('raft-status [data-raft-action="dismiss"]', timeout=5_000)
        return question, kind, text

    def errors(self):
        return [line for log in self.logs.values() for line in log
                if line.startswith(("[error]", "[pageerror]"))]

    def dump(self):
        for i, log in sorted(self.logs.items()):
            print("----- console of window %s (cluster %s) -----" % (i, self.cluster))
            print("\n".join(log[-150:]))

    def close_all(self):
        for c in self.contexts.values():
            c.close()


@pytest.fixture
def windows(browser, server, request):
    made = []

    def make_windows(tag, **kw):
        w = Windows(browser, server, tag, **kw)
        made.append(w)
        return w
    yield make_windows
    rep = getattr(request.node, "rep_call", None)
    for w in made:
        if rep is None or rep.failed:
            w.dump()
        w.close_all()


# A writer in one page: proposes distinct integers one after another. A write
# that fails after the driver's own retries is written again as a NEW value,
# so every value is applied at most once and every acknowledged one exactly once.
WRITER_JS = """
base => {
  const w = window.__writer = {next: base, acked: [], failed: [], stop: false, done: false};
  const pause = ms => new Promise(r => setTimeout(r, ms));
  (async () => {
    while (!w.stop) {
      const n = w.next++;
      const r = JSON.parse(await wraft.propose(JSON.stringify(n)));
      if ("ok" in r) w.acked.push(n); else { w.failed.push([n, r.error]); await pause(200); }
      await pause(40);
    }
    w.done = true;
  })();
}
"""


def start_writer(page, base):
    page.evaluate(WRITER_JS, base)


def stop_writer(page):
    """Stop the page's writer; returns the values it got acknowledged."""
    page.evaluate("() => { __writer.stop = true; }")
    wait_until(lambda: page.evaluate("() => __writer.done"), timeout=30, what="writer done")
    return page.evaluate("() => __writer.acked")


def writer_progress(page):
    return page.evaluate("() => ({acked: __writer.acked.length, failed: __writer.failed})")


def wait_more_writes(page, n=5, timeout=30):
    start = writer_progress(page)["acked"]
    wait_until(lambda: writer_progress(page)["acked"] >= start + n, timeout=timeout,
               what="%d more acknowledged writes" % n)


@pytest.mark.browser
def test_grow_3_to_5_and_shrink_back_to_3_through_the_status_panel_while_writing(windows):
    w = windows("grow")
    for i in (0, 1, 2):
        w.open(i)
    leader = w.one_leader([0, 1, 2])
    writer = min(i for i in (0, 1, 2) if i != leader)  # stays a voter throughout
    start_writer(w.pages[writer], 1)
    acked = []
    wait_more_writes(w.pages[writer])

    # Two more windows: not members yet, and they say so.
    for i in (3, 4):
        w.open(i)
    w.wait_attr([3, 4], "data-raft-membership", "none")
    note = w.pages[3].inner_text("raft-status [data-raft-not-member]")
    assert "not a member of cluster %s" % w.cluster in note and "status panel" in note
    assert w.attr(3, "data-raft-readonly") == "true"

    # Add each as learner, then promote it, from the writer's page (a
    # follower: the change is forwarded to the leader).
    for i in (3, 4):
        question, kind, text = w.click_change(writer, "add_learner", i)
        assert "Add node %d to the cluster as a learner?" % i in question
        assert kind == "ok" and "node %d was added as a learner" % i in text, text
        w.wait_attr([i], "data-raft-membership", "learner")
        # Caught up: the learner has applied what the writer's window has.
        wait_until(lambda: w.status(i)["applied"] >= w.status(writer)["commit"] - 2, timeout=20,
                   what="learner %d caught up" % i)
        wait_more_writes(w.pages[writer], 2)
        # (Writes continue: should the learner be an entry behind at that
        # instant, the driver retries the promotion for up to 2 s.)
        question, kind, text = w.click_change(writer, "promote", i)
        assert "Promote node %d to voter?" % i in question
        assert kind == "ok" and "node %d is now a voter" % i in text, text
    w.wait_attr([0, 1, 2, 3, 4], "data-raft-voters", "0,1,2,3,4")
    w.wait_attr([3, 4], "data-raft-membership", "voter")
    wait_more_writes(w.pages[writer])

    # Shrink back: remove the current leader, then one more, through the UI.
    leader = w.one_leader([0, 1, 2, 3, 4])
    if leader == writer:  # leadership moved to the writer: write from window 3 from now on
        acked += stop_writer(w.pages[writer])
        writer = 3
        start_writer(w.pages[writer], 100_000)
    other = min({0, 1, 2} - {leader, writer})  # removed too
    question, kind, text = w.click_change(writer, "remove", leader)
    assert "Remove node %d from the cluster?" % leader in question
    assert "It is the leader" in question
    assert kind == "ok" and "node %d was removed" % leader in text, text
    rest = sorted({0, 1, 2, 3, 4} - {leader})
    new_leader = w.one_leader(rest)
    assert new_leader != leader
    wait_more_writes(w.pages[writer])
    question, kind, text = w.click_change(writer, "remove", other)
    assert kind == "ok" and "node %d was removed" % other in text, text
    rest = sorted(set(rest) - {other})
    voters = ",".join(str(i) for i in rest)
    w.wait_attr(rest, "data-raft-voters", voters)
    w.wait_attr([leader, other], "data-raft-membership", "none")
    for gone in (leader, other):
        assert "not a member of cluster" in w.pages[gone].inner_text("raft-status [data-raft-not-member]")
    w.one_leader(rest)

    # The remaining three keep committing; the removed windows get nothing
    # new (once the last message of the leader that removed them is in).
    def settled(g):
        before = w.status(g)
        time.sleep(0.5)
        after = w.status(g)
        return (after["applied"] == before["applied"] == after["commit"]
                and after["last_index"] == before["last_index"] and after)
    gone = {g: wait_until(lambda: settled(g), timeout=10, what="removed window %d settled" % g)
            for g in (leader, other)}
    wait_more_writes(w.pages[writer], 10)
    last = 3 if writer != 3 else 4
    assert "ok" in w.propose(last, 10**6)
    acked += stop_writer(w.pages[writer])
    assert len(acked) >= 30
    for g in (leader, other):
        now = w.status(g)
        assert (now["applied"], now["last_index"]) == (gone[g]["applied"], gone[g]["last_index"]), \
            "a removed window got new entries"
        assert now["applied"] < w.status(writer)["commit"]

    # Every live member applied every acknowledged write exactly once, in one order.
    def same_log():
        logs = [w.applied(i) for i in rest]
        return all(lg == logs[0] for lg in logs) and 10**6 in [c for _, c in logs[0]] and logs[0]
    log = wait_until(same_log, timeout=20, what="the three voters applied the same log")
    values = [c for _, c in log]
    # A retry across the leader change may put a write in the log twice
    # (same client and seq); the sessions apply it once, and applied() lists
    # what was applied: each value once, and the counter is their sum.
    assert len(values) == len(set(values)), "a write was applied twice"
    for i in rest:
        assert w.state(i) == sum(values)
    assert set(acked) <= set(values)
    # Removed windows hold a prefix of that log (never a different history).
    for g in (leader, other):
        mine = w.applied(g)
        assert mine == log[:len(mine)]
    assert w.errors() == []


@pytest.mark.browser
def test_an_unsafe_removal_is_refused_in_plain_words(windows):
    w = windows("unsafe")
    for i in (0, 1, 2):
        w.open(i)
    leader = w.one_leader([0, 1, 2])
    a, b = sorted({0, 1, 2} - {leader})
    assert "ok" in w.propose(leader, 1)
    # Bad requests are clear errors, and change nothing.
    assert w.change(leader, "promote", b) == {"error": "invalid", "reason": "%d is not a learner" % b}
    out = w.change(leader, "grow", b)
    assert out["error"] == "invalid" and "unknown membership operation" in out["reason"]
    w.close(a)  # gone: the leader stops hearing from it
    wait_until(lambda: not w.status(leader)["peer_status"][str(a)]["recent"], timeout=10,
               what="leader notices node %d is gone" % a)
    question, kind, text = w.click_change(leader, "remove", b)
    assert "Remove node %d from the cluster?" % b in question
    assert kind == "refused"
    assert text == ("Refused: removing %d would leave 1 live voter of 2 (a majority needs 2)."
                    % b), text
    assert w.attr(leader, "data-raft-voters") == "0,1,2"
    assert "ok" in w.propose(b, 2)  # and the cluster keeps committing
    # Removing the window that is gone for good is safe: 2 live of 2.
    question, kind, text = w.click_change(leader, "remove", a)
    assert kind == "ok", text
    w.wait_attr([leader, b], "data-raft-voters", ",".join(sorted(str(i) for i in (leader, b))))
    assert "ok" in w.propose(b, 3)
    assert w.errors() == []


@pytest.mark.browser
def test_a_one_voter_cluster_commits_alone_and_grows_to_two(windows):
    w = windows("one", query="&size=1")
    w.open(0)
    w.one_leader([0])
    assert w.propose(0, 5) == {"ok": 5}
    w.open(1)
    w.wait_attr([1], "data-raft-membership", "none")
    assert w.attr(0, "data-raft-voters") == "0"
    question, kind, text = w.click_change(0, "add_learner", 1)
    assert kind == "ok", text
    w.wait_attr([1], "data-raft-membership", "learner")
    wait_until(lambda: w.status(1)["applied"] >= w.status(0)["commit"], timeout=15,
               what="learner caught up")
    question, kind, text = w.click_change(0, "promote", 1)
    assert "2 voters (a majority needs 2)" in question
    assert kind == "ok", text
    w.wait_attr([0, 1], "data-raft-voters", "0,1")
    w.one_leader([0, 1])
    assert w.propose(1, 6) == {"ok": 11}
    wait_until(lambda: [c for _, c in w.applied(0)] == [5, 6] == [c for _, c in w.applied(1)],
               timeout=10, what="both applied 5, 6")
    assert w.errors() == []


@pytest.mark.browser
def test_seven_windows_elect_a_leader_and_commit(windows):
    w = windows("seven", query="&size=7")
    for i in range(7):
        w.open(i, wait=False)
    for i in range(7):
        w.wait_loaded(i)
    leader = w.one_leader(list(range(7)), timeout=40)
    out = w.propose((leader + 1) % 7, 7)
    assert out == {"ok": 7}
    info = w.status(leader)
    assert info["size"] == 7 and info["voters"] == [str(i) for i in range(7)]
    assert w.attr(leader, "data-raft-voters") == "0,1,2,3,4,5,6"
    assert w.errors() == []
