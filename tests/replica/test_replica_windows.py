"""End to end in the private network namespace: real Chromium todo windows
and a real `python -m raft.replica` process over WebRTC (aiortc <->
Chromium SCTP/DTLS), and the command-line client.

    scripts/in-netns .venv/bin/pytest tests/replica/test_replica_windows.py -x -q

One story, in order: three todo windows; the replica joins as a learner
from a window's status panel and is promoted there; it is SIGKILLed during
writes and restarted from its SQLite file; the CLI client writes while the
leader window closes, and its write is applied once; the windows leave one
by one (removed, storage wiped) until the replica alone holds the data; three
fresh windows are added and receive the whole state from it.
"""

import json
import threading
import time

import pytest

from browser_helpers import wait_until
from replica_helpers import Proc, ReplicaProc, client_cmd, run_client
from test_membership_windows import Windows

pytestmark = pytest.mark.browser
TODO = "components.todo:TodoState"


WRITE_LOOP = """n => { window.__writes = []; (async () => { for (let i = 0; i < n; i++)
  window.__writes.push(JSON.parse(await wraft.propose(JSON.stringify(["add", "k" + i, "w" + i]))));
})(); }"""


def converged(w, nodes):
    states = [w.state(i) for i in nodes]
    return all(s == states[0] for s in states) and [states[0]]


def todo_items(state):
    return [item[0] for item in state]


def add(w, i, item_id):
    out = w.propose(i, ["add", item_id, "todo " + item_id])
    assert out == {"ok": item_id}, out
    return out


def wipe(w, i):
    """Close window i and forget its origin's storage for good."""
    w.pages[i].evaluate("localStorage.clear()")
    w.close(i)
    w.contexts.pop(i).close()


def test_replica_learner_promoted_killed_then_sole_holder_restores_fresh_windows(
        in_browser, server, tmp_path):
    in_browser(lambda browser: replica_story(browser, server, tmp_path))


def replica_story(browser, server, tmp_path):
    t0 = time.monotonic()
    w = Windows(browser, server, "rep", path="/todo")
    ws = "ws://127.0.0.1:%d/ws" % server.port
    db = tmp_path / "replica.sqlite"
    rep = None
    try:
        for i in (0, 1, 2):
            w.open(i)
        w.one_leader((0, 1, 2))
        for k in range(5):
            add(w, k % 3, "w%d" % k)

        # The replica joins through the introducer; a window adds it.
        rep = ReplicaProc(ws, w.cluster, 3, db, state=TODO, loopback=False)
        wait_until(lambda: "3" in w.status(0)["present"], what="windows see the replica")
        question, kind, text = w.click_change(0, "add_learner", "3")
        assert kind == "ok", (question, text)
        wait_until(lambda: rep.status()["membership"] == "learner", what="replica is a learner")
        wait_until(lambda: rep.command("state")["ok"] == w.state(0), what="learner caught up")
        question, kind, text = w.click_change(1, "promote", "3")
        assert kind == "ok", (question, text)
        wait_until(lambda: rep.status()["membership"] == "voter", what="replica is a voter")
        assert w.status(0)["voters"] == ["0", "1", "2", "3"]
        print("joined and promoted after %.1f s" % (time.monotonic() - t0))

        # SIGKILL during writes, restart from the SQLite file.
        # (Playwright is single-threaded: the window writes by itself.)
        w.pages[0].evaluate(WRITE_LOOP, 30)
        wait_until(lambda: w.pages[0].evaluate("window.__writes.length") >= 5,
                   what="writes under way")
        rep.kill()
        wait_until(lambda: w.pages[0].evaluate("window.__writes.length") == 30, timeout=60,
                   what="every write done with the replica dead")
        assert w.pages[0].evaluate("window.__writes") == [{"ok": "k%d" % i} for i in range(30)]
        rep = ReplicaProc(ws, w.cluster, 3, db, state=TODO, loopback=False)
        want = wait_until(lambda: converged(w, (0, 1, 2)), what="windows agree")[0]
        wait_until(lambda: rep.command("state")["ok"] == want, what="restarted replica caught up")
        assert rep.status()["membership"] == "voter"
        print("killed and caught up after %.1f s" % (time.monotonic() - t0))

        # The CLI client writes through the leader window, which closes.
        lead = w.one_leader((0, 1, 2)) if rep.status()["leader"] != "3" else None
        via = str(lead) if lead is not None else "0"
        box = {}
        cli = threading.Thread(target=lambda: box.update(out=run_client(
            ws, w.cluster, "--state", TODO, "--via", via, "--timeout", "60",
            "propose", '["add", "cli-1", "from the command line"]', loopback=False)))
        cli.start()
        wait_until(lambda: any(p.startswith("c") for p in rep.status()["presence"]),
                   interval=0.02, what="the client joined")
        closed = int(via)
        w.close(closed)
        cli.join(90)
        code, out, err = box["out"]
        assert code == 0 and out == [{"ok": True, "result": "cli-1"}], (out, err)
        alive = [i for i in (0, 1, 2) if i != closed]
        wait_until(lambda: "cli-1" in todo_items(w.state(alive[0])), what="cli write applied")
        applied = [c for _, c in w.applied(alive[0]) if c[:2] == ["add", "cli-1"]]
        assert len(applied) == 1, applied  # exactly once
        print("client write through a closing leader after %.1f s" % (time.monotonic() - t0))

        # The windows leave for good, one by one, until the replica alone holds the data.
        w.contexts.pop(closed).close()
        assert rep.command("remove %d" % closed)["ok"]["voters"] == \
            sorted(["3"] + [str(i) for i in alive])
        for i in alive:
            out = rep.command("remove %d" % i)
            assert "ok" in out, out
            wipe(w, i)
        wait_until(lambda: rep.status()["role"] == "leader", what="replica leads alone")
        assert rep.status()["voters"] == ["3"]
        final = rep.command("state")["ok"]
        assert len(final) == 5 + 30 + 1

        # Three fresh windows (never members, empty storage) get it all from the replica.
        fresh = (4, 5, 6)
        for i in fresh:
            w.open(i)
        for i in fresh:
            wait_until(lambda: str(i) in rep.status()["presence"], what="window %d present" % i)
            assert "ok" in rep.command("add_learner %d" % i)
        for i in fresh:
            wait_until(lambda: w.state(i) == final, what="window %d has the whole state" % i)
        for i in (4, 5):
            assert "ok" in rep.command("promote %d" % i)
        assert w.propose(4, ["add", "after", "restored"]) == {"ok": "after"}
        wait_until(lambda: all(todo_items(w.state(i))[-1] == "after" for i in fresh),
                   what="the restored cluster writes")
        print("restored 3 fresh windows after %.1f s" % (time.monotonic() - t0))
        assert not w.errors(), w.errors()
    except BaseException:
        w.dump()
        if rep is not None:
            print("----- replica stderr -----\n" + rep.stderr())
        raise
    finally:
        if rep is not None:
            rep.kill()
        w.close_all()


def test_cli_client_and_a_replica_on_the_kv_app_agree_with_the_windows(in_browser, server,
                                                                        tmp_path):
    """The client's default state class is the /kv app's (KVState): its
    writes show in the windows, its reads see theirs, its watch prints the
    changes of the keys it watches; a replica with the same class stamps the
    same revisions as the windows do."""
    in_browser(lambda browser: kv_story(browser, server, tmp_path))


def kv_story(browser, server, tmp_path):
    w = Windows(browser, server, "repkv", path="/kv")
    ws = "ws://127.0.0.1:%d/ws" % server.port
    rep = watch = None
    try:
        for i in (0, 1, 2):
            w.open(i)
        w.one_leader((0, 1, 2))
        watch = Proc(client_cmd(ws, w.cluster, "watch", "gr", loopback=False), stdin=False)
        wait_until(lambda: "watching" in watch.stderr(), what="watch started")
        assert w.propose(1, ["put", "from-window", 1]) == {"ok": None}
        code, out, err = run_client(ws, w.cluster, "put", "greeting", '"hello"', loopback=False)
        assert (code, out) == (0, [{"ok": True, "key": "greeting", "value": "hello",
                                    "previous": None}]), err
        code, out, err = run_client(ws, w.cluster, "get", "from-window", loopback=False)
        assert code == 0 and out[0]["value"] == 1, (out, err)
        code, out, _ = run_client(ws, w.cluster, "cas", "greeting", '"nope"', '"x"', loopback=False)
        assert code == 1 and out[0]["value"] == "hello"
        wait_until(lambda: dict(w.state(2)["data"]).get("greeting") == "hello", what="in window 2")
        rev = dict((k, i) for k, _t, i in w.state(2)["revisions"])["greeting"]
        # the watch saw the one change of a key starting with "gr", at its index
        wait_until(lambda: watch.out, what="watch line")
        assert [json.loads(line) for line in watch.out] == [
            {"index": rev, "op": "put", "key": "greeting", "value": "hello"}]
        rep = ReplicaProc(ws, w.cluster, 3, tmp_path / "kv.sqlite",
                          state="components.kv_view:KVState", loopback=False)
        wait_until(lambda: "3" in w.status(0)["present"], what="replica present")
        assert "ok" in w.change(0, "add_learner", "3")
        assert w.propose(2, ["put", "after", 2]) == {"ok": None}
        want = wait_until(lambda: converged(w, (0, 1, 2)), what="windows agree")[0]
        wait_until(lambda: rep.command("state")["ok"] == want, what="replica, revisions included")
        assert [r[0] for r in want["revisions"]] == ["after", "from-window", "greeting"]
        assert not w.errors(), w.errors()
    except BaseException:
        w.dump()
        if rep is not None:
            print("----- replica stderr -----\n" + rep.stderr())
        raise
    finally:
        if rep is not None:
            rep.kill()
        if watch is not None:
            watch.kill()
        w.close_all()
