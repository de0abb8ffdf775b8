"""The wire codec: round trips and validation of every field (plain asserts:
also run under MicroPython)."""
from raft import codec
from raft.rng import Rng, seed_from_text
from helpers import make_node, drain

GOOD = [
    ["pv", "a", "b", 3, 10, 2],
    ["v", "a", "b", 3, 10, 2],
    ["pvr", "a", "b", 3, 1],
    ["vr", "a", "b", 3, 0],
    ["a", "a", "b", 3, 4, 2, [[2, None, 0, None], [3, "cl", 7, ["put", "k", {"x": [1.5, True]}]]], 4],
    ["ar", "a", "b", 3, 6, 1, 4, 2],
    ["h", "a", "b", 3, 5, 9],
    ["hr", "a", "b", 3, 9],
    ["p", "a", "b", 3, "cl", 1, ["cas", "k", None, "v"]],
    ["pr", "a", "b", 3, "cl", 1, "too_many_pending", "b"],
    ["pr", "a", "b", 3, "cl", 1, "no_leader", None],
    ["r", "a", "b", 3, "ctx"],
    ["r", "a", "b", 3, 12],
    ["rr", "a", "b", 3, "ctx", 40, None],
    ["rr", "a", "b", 3, 12, 0, "no_leader"],
]

BAD = [
    None, 5, "x", [], ["a"],
    ["zz", "a", "b", 1],                                  # unknown tag
    [7, "a", "b", 1, 0, 0],                               # tag not a string
    ["v", "a", "b", 1, 0],                                # too few fields
    ["v", "a", "b", 1, 0, 0, 0],                          # too many fields
    ["v", "", "b", 1, 0, 0],                              # empty id
    ["v", "a" * 65, "b", 1, 0, 0],                        # id too long
    ["v", "a", 3, 1, 0, 0],                               # id not str
    ["v", "a", "b", -1, 0, 0],                            # negative term
    ["v", "a", "b", 1.0, 0, 0],                           # float term
    ["v", "a", "b", True, 0, 0],                          # bool term
    ["v", "a", "b", 2 ** 60, 0, 0],                       # out of range
    ["v", "a", "b", 1, 0, 2],                             # last term above term
    ["vr", "a", "b", 1, 2],                               # granted not 0/1
    ["a", "a", "b", 1, 0, 0, "x", 0],                     # entries not a list
    ["a", "a", "b", 1, 0, 0, [[1, None, 0]], 0],          # entry too short
    ["a", "a", "b", 1, 0, 0, [[2, None, 0, None]], 0],    # entry term above term
    ["a", "a", "b", 2, 0, 2, [[1, None, 0, None]], 0],    # entry term below prev term
    ["a", "a", "b", 2, 0, 0, [[2, None, 0, None], [1, None, 0, None]], 0],  # terms go back
    ["a", "a", "b", 1, 0, 0, [[1, None, 1, None]], 0],    # bad no-op
    ["a", "a", "b", 1, 0, 0, [[1, "c", 0, 1]], 0],        # seq 0 for a client
    ["a", "a", "b", 1, 0, 0, [[1, 5, 1, 1]], 0],          # client not str
    ["a", "a", "b", 1, -1, 0, [], 0],                     # negative prev
    ["a", "a", "b", 1, 0, 0, [], "0"],                    # commit not int
    ["ar", "a", "b", 1, 0, 2, 0, 0],                      # reject flag
    ["h", "a", "b", 1, 0, -1],
    ["hr", "a", "b", 1, "x"],
    ["p", "a", "b", 1, "", 1, None],                      # empty client id
    ["p", "a", "b", 1, "c", -3, None],
    ["pr", "a", "b", 1, "c", 1, "weird", None],           # unknown error code
    ["pr", "a", "b", 1, "c", 1, "timeout", 5],
    ["r", "a", "b", 1, [1]],                              # ctx not str/int
    ["rr", "a", "b", 1, "c", -1, None],
    ["rr", "a", "b", 1, "c", 1, "weird"],
]


def test_encode_decode_round_trip_every_type():
    for m in GOOD:
        text = codec.encode(m)
        assert text.startswith("[1,\"")
        assert " " not in text.replace("put", "")   # compact separators
        assert codec.decode(text) == m
        assert codec.problem(m) is None


def test_every_message_type_has_one_builder_and_it_builds_valid_messages():
    built = [
        codec.vote_request("pv", "a", "b", 2, 5, 1), codec.vote_request("v", "a", "b", 2, 5, 1),
        codec.vote_reply("pvr", "b", "a", 2, 1), codec.vote_reply("vr", "b", "a", 2, 0),
        codec.append_request("a", "b", 2, 5, 1, [[2, "c", 1, ["put", "k", 1]]], 5),
        codec.append_reply("b", "a", 2, 6, 0, 0, 0),
        codec.heartbeat("a", "b", 2, 5, 3), codec.heartbeat_reply("b", "a", 2, 3),
        codec.proposal("b", "a", 2, "c", 1, ["put", "k", 1]),
        codec.proposal_failure("a", "b", 2, "c", 1, "no_leader", None),
        codec.read_request("b", "a", 2, "n.1"), codec.read_reply("a", "b", 2, "n.1", 5, None),
        codec.snapshot_chunk("a", "b", 2, 5, 1, 0, "{}", 1),
        codec.snapshot_reply("b", "a", 2, 5, 0, 2, 0),
        codec.membership_request("b", "a", 2, "c", 1, "add_learner", "d"),
        codec.membership_reply("a", "b", 2, "c", 1, "unsafe", "why"),
    ]
    assert sorted(m[0] for m in built) == sorted(codec.FIELD_COUNT)
    for m in built:
        assert codec.problem(m) is None, m
        assert codec.decode(codec.encode(m)) == m


def test_problem_names_every_malformed_message():
    for m in BAD:
        assert codec.problem(m) is not None, m


def test_non_json_command_rejected_on_step_path_only():
    m = ["p", "a", "b", 1, "c", 1, set([1])]
    assert codec.problem(m) is not None
    m2 = ["p", "a", "b", 1, "c", 1, [1, [2, {"k": float("inf")}]]]
    assert codec.problem(m2) is not None


def _decode_error(text):
    try:
        codec.decode(text)
    except codec.DecodeError:
        return True
    return False


def test_decode_rejects_bad_text():
    assert _decode_error("")
    assert _decode_error("[1,")
    assert _decode_error("{}")
    assert _decode_error("[]")
    assert _decode_error('[2,"hr","a","b",1,0]')      # unknown protocol version
    assert _decode_error('["1","hr","a","b",1,0]')
    assert _decode_error(b'[1,"hr","a","b",1,0]')
    assert _decode_error("[1," + "1," * 40000 + "1]")  # over 64 KiB
    for m in BAD:
        if isinstance(m, list):
            assert _decode_error(codec.encode(m)), m


def test_step_and_receive_drop_and_count_bad_input_without_raising():
    n = make_node()
    for m in BAD:
        n.step(m)
    n.receive("not json")
    n.receive(12)
    n.receive('[1,"v","b","zz",1,0,0]')          # for someone else
    n.receive('[1,"v","a","a",1,0,0]')           # from itself
    assert n.stats["dropped_malformed"] == len(BAD) + 2
    assert n.stats["dropped_wrong_destination"] == 1
    # (other ids are accepted since membership changes: see test_membership)
    assert n.stats["dropped_unknown_sender"] == 1
    assert n.term == 0 and drain(n)[0] == []


def test_replayed_stale_messages_are_dropped_and_counted():
    n = make_node()
    n.step(["a", "b", "a", 2, 0, 0, [[2, None, 0, None]], 0])
    drain(n)
    for _ in range(3):
        n.step(["h", "c", "a", 1, 0, 0])       # old leader's heartbeat replayed
        n.step(["vr", "c", "a", 1, 1])
    assert n.stats["dropped_stale_term"] == 6
    assert n.leader_id == "b" and n.term == 2


def test_rng_is_deterministic_and_in_range():
    a = Rng(42)
    b = Rng(42)
    xs = [a.random() for _ in range(100)]
    assert xs == [b.random() for _ in range(100)]
    assert all(0 <= x < 1 for x in xs)
    assert len(set(xs)) == 100
    r = Rng(1)
    assert all(3 <= r.randint(3, 5) <= 5 for _ in range(50))
    assert seed_from_text("n1") != seed_from_text("n2")
