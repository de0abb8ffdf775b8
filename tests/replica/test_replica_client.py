"""`python -m raft.replica.client` against a cluster of CPython replicas:
the KV commands and their output, exit codes for no leader / wrong secret /
introducer down / refused commands, and a write that is applied exactly
once while the leader it went through is killed."""

import signal
import threading

from replica_helpers import ReplicaProc, client_cmd, run_client, wait_until, Proc
from test_replica import KV, leader_of, start_cluster

COUNTER = "tests.replica.counter_state:Counter"


def test_kv_commands_print_json_lines_with_exit_codes(signaling, tmp_path):
    reps, lead = start_cluster(signaling, tmp_path, "kvc")
    try:
        kv = ("--state", KV)
        code, out, err = run_client(signaling.ws, "kvc", *kv, "put", "greeting", '"hello"')
        assert (code, out) == (0, [{"ok": True, "key": "greeting", "value": "hello",
                                    "previous": None}]), err
        code, out, _ = run_client(signaling.ws, "kvc", *kv, "put", "n", "41")
        assert code == 0 and out[0]["value"] == 41  # JSON values; a bare word is a string
        # a linearizable read through a follower sees the write just committed
        follower = next(r.node for r in reps if r.node != lead)
        code, out, _ = run_client(signaling.ws, "kvc", *kv, "--via", follower, "get", "greeting")
        assert code == 0 and out[0]["value"] == "hello" and out[0]["found"] and out[0]["index"] > 0
        code, out, _ = run_client(signaling.ws, "kvc", *kv, "cas", "n", "40", "42")
        assert code == 1 and out == [{"ok": True, "key": "n", "swapped": False, "value": 41}]
        code, out, _ = run_client(signaling.ws, "kvc", *kv, "cas", "n", "41", "42")
        assert code == 0 and out[0]["swapped"] is True and out[0]["value"] == 42
        code, out, _ = run_client(signaling.ws, "kvc", *kv, "delete", "greeting")
        assert code == 0 and out[0]["existed"] is True
        code, out, _ = run_client(signaling.ws, "kvc", *kv, "get", "greeting")
        assert code == 0 and out[0]["found"] is False
        # watch prints each change as it commits
        w = Proc(client_cmd(signaling.ws, "kvc", *kv, "watch"), stdin=False)
        try:
            wait_until(lambda: "watching" in w.stderr(), what="watch started")
            assert run_client(signaling.ws, "kvc", *kv, "put", "w", "1")[0] == 0
            wait_until(lambda: any('"command": ["put", "w", 1]' in line for line in w.out),
                       what="watch line")
            assert w.interrupt() == 0  # Ctrl-C is how a watch ends
        finally:
            w.kill()
    finally:
        for r in reps:
            r.kill()


def test_no_leader_wrong_secret_and_no_introducer_are_clear_errors(signaling, tmp_path,
                                                                   start_signaling):
    # one voter of three: attached, but no leader
    lone = ReplicaProc(signaling.ws, "nol", "0", tmp_path / "n.sqlite", state=KV)
    try:
        code, out, err = run_client(signaling.ws, "nol", "--state", KV, "--timeout", "3",
                                    "put", "k", "1")
        assert code == 7 and out[0]["ok"] is False and out[0]["error"] in ("no_leader", "timeout")
        assert "which knows no leader" in out[0]["message"], out
    finally:
        lone.kill()
    # a replica that does not apply the log refuses clients
    opaque = ReplicaProc(signaling.ws, "opq", "0", tmp_path / "o.sqlite", extra=["--size", "1"])
    try:
        wait_until(lambda: opaque.status()["role"] == "leader", what="leads")
        code, out, _ = run_client(signaling.ws, "opq", "--timeout", "3", "put", "k", "1")
        assert code == 7 and "member 0 refused us" in out[0]["message"], out
    finally:
        opaque.kill()
    code, out, _ = run_client(signaling.ws, "empty", "--timeout", "2", "put", "k", "1")
    assert code == 7 and "no member of cluster empty is present" in out[0]["message"]
    (tmp_path / "right").write_text("right-access-secret-of-32-chars-x")
    (tmp_path / "wrong").write_text("wrong-access-secret-of-32-chars-x")
    secured = start_signaling("--secret-file", str(tmp_path / "right"))
    code, out, _ = run_client(secured.ws, "x", "--secret-file", str(tmp_path / "wrong"), "get", "k")
    assert code == 6 and out[0]["error"] == "auth_failed" and "wrong access secret" in out[0]["message"]
    code, out, _ = run_client(secured.ws, "x", "get", "k")
    assert code == 6 and out[0]["error"] == "auth_required" and "WRAFT_SECRET" in out[0]["message"]
    code, out, _ = run_client("ws://127.0.0.1:9/ws", "x", "--wait-introducer", "1", "get", "k")
    assert code == 5 and "cannot reach the introducer" in out[0]["message"]
    code, out, err = run_client(signaling.ws, "x", "bogus")
    assert code == 2 and "invalid choice" in err


def test_a_write_through_a_killed_leader_is_applied_exactly_once(signaling, tmp_path):
    reps, lead = start_cluster(signaling, tmp_path, "once", state=COUNTER)
    by = {r.node: r for r in reps}
    rest = [r for r in reps if r.node != lead]
    try:
        assert by[lead].command("propose 10")["ok"] == 10
        base = by[lead].status()["last_index"]
        # The client attaches to the leader. As it joins the introducer, the followers
        # freeze: its write reaches the leader and cannot commit; then the
        # leader dies and the followers wake up.
        result = {}
        t = threading.Thread(target=lambda: result.update(out=run_client(
            signaling.ws, "once", "--state", COUNTER, "--via", lead, "propose", "1")))
        t.start()
        wait_until(lambda: any(p.startswith("c") for p in by[lead].status()["presence"]),
                   interval=0.02, what="client joined the introducer")
        for r in rest:
            r.p.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: by[lead].status()["last_index"] > base, interval=0.02,
                       what="the write appended on the leader, not committed")
            assert by[lead].status()["commit"] <= base
        finally:
            by[lead].kill()
            for r in rest:
                r.p.send_signal(signal.SIGCONT)
        t.join(90)
        code, out, err = result["out"]
        assert code == 0 and out[0]["result"] == 11, (out, err)
        wait_until(lambda: leader_of(rest), timeout=30, what="new leader")
        for r in rest:
            wait_until(lambda: r.command("state")["ok"] == 11, what="applied once on %s" % r.node)
        assert rest[0].command("propose 1")["ok"] == 12  # the next write sees 11, not 12
        # a command the app rejects is refused, exit 8
        code, out, _ = run_client(signaling.ws, "once", "--state", COUNTER, "propose", '"x"')
        assert code == 8 and out[0]["error"] == "command_failed" and "need an int" in out[0]["message"]
    finally:
        for r in reps:
            r.kill()
