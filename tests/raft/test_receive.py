"""The way in (issue 11 item 3, the core's defence in depth): node.receive
decodes and validates wire text once and drops what claims another sender;
members drop Raft traffic from ids outside every configuration they know,
yet still follow a leader they have not heard of and hear a learner they
just added. Plain functions: they also run under MicroPython and Pyodide."""
from raft import codec, Node
from raft.rng import Rng, seed_from_text
from helpers import config, drain, elect, of_type

ABC = ["a", "b", "c"]


def mk(nid, voters=None, storage=None, **kw):
    return Node(nid, voters or ABC, config(**kw), Rng(seed_from_text(nid)).random, None, storage, 0)


def _append(src, dst, term, prev, prev_term, ents, commit):
    return ["a", src, dst, term, prev, prev_term, ents, commit]


def test_receive_decodes_and_validates_once_without_walking_commands():
    walks = [0]
    original = codec.json_size

    def counting(x, depth):
        walks[0] += 1
        return original(x, depth)
    b = mk("b")
    ents = [[1, None, 0, None]] + [[1, "c", i, ["put", "k%d" % i, {"v": [i, "x"]}]]
                                  for i in range(1, 20)]
    text = codec.encode(_append("a", "b", 1, 0, 0, ents, 0))
    codec.json_size = counting
    try:
        assert b.receive(text, "a") == "a"     # stepped: its type tag
        b.step(_append("a", "b", 1, 19, 1, [[1, "c", 20, ["put", "z", [1, {"y": 2}]]]], 0))
    finally:
        codec.json_size = original
    assert walks[0] == 0                       # decoded JSON is JSON: no second walk
    assert b.last_index() == 20 and b.leader_id == "a"
    # what does not decode is still dropped and counted, never raised
    assert b.receive("[1,\"a\",\"a\"", "a") is None
    assert b.receive(codec.encode(["a", "a", "b", 1, 0, 0, [[1, "c", 0, 5]], 0]), "a") is None  # seq 0
    assert b.stats["dropped_malformed"] == 2 and b.last_index() == 20


def test_a_message_claiming_another_sender_is_dropped():
    b = mk("b")
    forged = codec.encode(_append("a", "b", 5, 0, 0, [[5, "x", 1, ["put", "k", 1]]], 1))
    assert b.receive(forged, "c") is None      # came on c's channel, claims to be a
    assert b.stats["dropped_spoofed"] == 1
    assert b.term == 0 and b.last_index() == 0 and b.leader_id is None
    b.receive(forged, "a")
    assert b.term == 5 and b.last_index() == 1


def test_members_drop_campaigns_acks_and_requests_from_ids_in_no_configuration():
    a = mk("a")
    elect(a)
    term = a.term
    for m in (["pv", "zz", "a", term + 5, 99, term], ["v", "zz", "a", term + 5, 99, term],
              ["ar", "zz", "a", term, 1, 0, 0, 0], ["hr", "zz", "a", term, 1],
              ["p", "zz", "a", term, "cz", 1, ["put", "k", 1]], ["r", "zz", "a", term, "q"],
              ["m", "zz", "a", term, "cz", 1, "remove", "b"],
              ["pvr", "zz", "a", term + 1, 1], ["sr", "zz", "a", term, 1, 0, 0, 0]):
        a.receive(codec.encode(m), "zz")
    msgs = drain(a)[0]
    assert a.stats["dropped_outsider"] == 9
    assert a.role == "leader" and a.term == term and a.voters == ABC
    assert not [m for m in msgs if m[2] == "zz"]          # not even answered
    # and a leader it is told about holds no sway while ours holds its lease
    b = mk("b")
    b.step(_append("a", "b", 1, 0, 0, [[1, None, 0, None]], 0))
    drain(b)
    b.tick(10)
    b.step(_append("zz", "b", 9, 1, 1, [[9, "x", 1, ["put", "evil", 1]]], 2))
    assert b.term == 1 and b.last_index() == 1 and b.stats["dropped_outsider"] == 1


def test_a_member_that_missed_a_change_still_follows_its_new_leader():
    # b knows only the bootstrap a, b, c; the cluster has since added d, which
    # now leads. Once no leader b knows holds a lease, b follows d.
    b = mk("b")
    b.step(_append("a", "b", 1, 0, 0, [[1, None, 0, None]], 1))
    drain(b)
    conf = [2, None, 0, {"voters": ["a", "b", "c", "d"], "learners": [], "by": ["op", 1]}]
    late = _append("d", "b", 3, 1, 1, [conf, [3, None, 0, None]], 3)
    b.tick(10)
    b.step(late)                                           # a's lease still holds
    assert b.stats["dropped_outsider"] == 1 and b.leader_id == "a"
    b.tick(10 + b.cfg.election_min_ms)
    b.step(late)
    msgs = drain(b)[0]
    assert b.leader_id == "d" and b.commit_index == 3 and "d" in b.voters
    assert of_type(msgs, "ar", "d")[0][5] == 0             # acknowledged
    b.step(["h", "d", "b", 3, 3, 0])                        # d is known now: no lease check
    assert b.stats["dropped_outsider"] == 1


def test_a_window_not_added_yet_follows_a_leader_it_has_not_heard_of():
    x = mk("x", ["a", "b", "c"])              # bootstrap knowledge only
    x.step(_append("e", "x", 4, 0, 0, [[4, None, 0, None]], 1))
    drain(x)
    assert x.leader_id == "e" and x.commit_index == 1 and x.membership == "none"


def test_a_leader_hears_the_learner_it_just_added():
    a = mk("a")
    msgs = elect(a)
    for m in of_type(msgs, "a"):
        a.step(["ar", m[2], "a", a.term, m[4] + len(m[6]), 0, 0, 0])
    drain(a)
    a.change_membership("op", 1, "add_learner", "d")
    msgs = drain(a)[0]
    assert a.learners == ["d"] and of_type(msgs, "a", "d")
    a.receive(codec.encode(["ar", "d", "a", a.term, a.last_index(), 0, 0, 0]), "d")
    assert a.progress["d"].match == a.last_index()
    assert a.stats.get("dropped_outsider", 0) == 0
