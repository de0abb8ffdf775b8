"""Property-based fuzzing: random, malformed and plausible-but-hostile
messages never make a node raise, and its local invariants hold."""
import json
import os

from hypothesis import given, settings, strategies as st, HealthCheck

from raft import codec
from raft.node import LEADER, FOLLOWER, CANDIDATE, PRECANDIDATE
from helpers import make_node, drain, elect, ack_all, of_type

IDS = ["a", "b", "c", "zz", ""]
TAGS = list(codec.FIELD_COUNT) + ["x", ""]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 64, 2 ** 64),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda ch: st.one_of(
    st.lists(ch, max_size=4), st.dictionaries(st.text(max_size=4), ch, max_size=3)), max_leaves=10)
small_int = st.one_of(st.integers(0, 12), st.integers(-3, 2 ** 54), st.just(True))
entry = st.one_of(
    st.tuples(st.integers(0, 6), st.none(), st.just(0), st.none()).map(list),
    st.tuples(st.integers(0, 6), st.sampled_from(["c1", "c2", ""]), st.integers(0, 4), json_value).map(list),
    json_value)
field = st.one_of(small_int, st.sampled_from(IDS), st.none(), st.lists(entry, max_size=5),
                  json_value, st.sampled_from(codec.ERRORS))


@st.composite
def plausible_message(draw):
    """Right tag and arity, sender/receiver mostly valid, any field values."""
    t = draw(st.sampled_from(TAGS))
    n = codec.FIELD_COUNT.get(t, draw(st.integers(0, 5)))
    src = draw(st.sampled_from(["b", "c", "b", "zz", "a"]))
    dst = draw(st.sampled_from(["a", "a", "a", "b"]))
    term = draw(st.one_of(st.integers(0, 6), small_int))
    extra = draw(st.integers(-1, 1)) if draw(st.integers(0, 9)) == 0 else 0
    fields = [draw(field) for _ in range(max(0, n + extra))]
    return [t, src, dst, term] + fields


@st.composite
def valid_message(draw):
    """Well-formed messages from b or c, with arbitrary in-range content."""
    t = draw(st.sampled_from(sorted(codec.FIELD_COUNT)))
    src = draw(st.sampled_from(["b", "c"]))
    term = draw(st.integers(0, 6))
    i = lambda: draw(st.integers(0, 12))
    if t in ("pv", "v"):
        return [t, src, "a", term, i(), draw(st.integers(0, term))]
    if t in ("pvr", "vr"):
        return [t, src, "a", term, draw(st.integers(0, 1))]
    if t == "a":
        prev_term = draw(st.integers(0, term))
        terms = sorted(draw(st.lists(st.integers(prev_term, term), max_size=6)))
        ents = [[x, "c%d" % draw(st.integers(1, 2)), draw(st.integers(1, 5)),
                 ["put", "k", draw(st.integers(0, 9))]] for x in terms]
        if ents and draw(st.integers(0, 3)) == 0:
            # a configuration entry (membership change)
            ents[-1] = [ents[-1][0], None, 0, {"voters": draw(st.sampled_from([["a"], ["a", "b"], ["b", "c", "d"]])),
                                               "learners": draw(st.sampled_from([[], ["e"], ["zz"]])),
                                               "by": ["c1", draw(st.integers(1, 5))]}]
        return [t, src, "a", term, i(), prev_term, ents, i()]
    if t == "ar":
        return [t, src, "a", term, i(), draw(st.integers(0, 1)), i(), draw(st.integers(0, 6))]
    if t == "h":
        return [t, src, "a", term, i(), i()]
    if t == "hr":
        return [t, src, "a", term, i()]
    if t == "p":
        return [t, src, "a", term, "c1", draw(st.integers(1, 5)), ["put", "k", 1]]
    if t == "pr":
        return [t, src, "a", term, "c1", draw(st.integers(1, 5)),
                draw(st.sampled_from(codec.ERRORS)), draw(st.sampled_from(["b", None]))]
    if t == "r":
        return [t, src, "a", term, draw(st.one_of(st.text(max_size=4), st.integers(0, 9)))]
    if t == "s":
        return [t, src, "a", term, draw(st.integers(1, 12)), draw(st.integers(0, term)), i(),
                draw(st.sampled_from(["", "{}", "[]", "!!", '{"index":', '{"index":3,"sm":[],"sessions":[]}'])),
                draw(st.integers(0, 1))]
    if t == "sr":
        return [t, src, "a", term, i(), i(), i(), draw(st.integers(0, 1))]
    if t == "m":
        return [t, src, "a", term, "c1", draw(st.integers(1, 5)),
                draw(st.sampled_from(["add_learner", "promote", "remove"])),
                draw(st.sampled_from(["a", "b", "c", "d"]))]
    if t == "mr":
        e = draw(st.sampled_from((None,) + codec.CHANGE_ERRORS))
        v = {"voters": ["a", "b"], "learners": []} if e is None else draw(st.sampled_from([None, "why", "b"]))
        return [t, src, "a", term, "c1", draw(st.integers(1, 5)), e, v]
    return [t, src, "a", term, draw(st.one_of(st.text(max_size=4), st.integers(0, 9))), i(),
            draw(st.sampled_from((None,) + codec.ERRORS))]


def _start(kind):
    n = make_node()
    if kind == "leader":
        msgs = elect(n, now=1000)
        ack_all(n, of_type(msgs, "a", "b"))
        for s in range(1, 4):
            n.propose("c1", s, ["put", "k", s])
    elif kind == "log":
        n.step(["a", "b", "a", 2, 0, 0, [[1, None, 0, None], [2, "c1", 1, ["put", "k", 1]],
                                          [2, "c2", 1, ["put", "j", 2]]], 1])
    drain(n)
    return n


def _check_invariants(n, before):
    assert n.role in (LEADER, FOLLOWER, CANDIDATE, PRECANDIDATE)
    assert n.term >= before["term"]
    assert n.commit_index >= before["commit"]
    assert n.applied_index <= n.commit_index <= n.last_index()
    assert n.vote is None or (type(n.vote) is str and n.vote != "")
    assert n.membership in ("voter", "learner", "none")
    assert n.config_index <= n.last_index()
    if n.role == LEADER:
        assert n.leader_id == n.id
    # log[0] is the sentinel: term of the snapshot's index (0: no snapshot)
    assert n.log[0] == [n.log[0][0], None, 0, None] and n.offset <= n.applied_index
    prev = n.log[0][0]
    for e in n.log[1:]:
        assert codec.entries_problem([e], prev, n.term, False) is None, e
        prev = e[0]
    # committed entries never change
    for i, e in before["committed"].items():
        if i > n.offset:          # below: covered by a snapshot
            assert n.log[i - n.offset] == e
    before["term"] = n.term
    before["commit"] = n.commit_index
    for i in range(n.offset + 1, n.commit_index + 1):
        before["committed"][i] = n.log[i - n.offset]


def _feed(kind, inputs):
    n = _start(kind)
    before = {"term": n.term, "commit": n.commit_index, "committed": {}}
    now = 1000
    for how, x in inputs:
        if how == "text":
            n.receive(x)
        elif how == "tick":
            now += x
            n.tick(now)
        else:
            n.tick(now)
            n.step(x)
        msgs = drain(n)[0]
        for m in msgs:
            assert codec.problem(m) is None, m     # we only ever send valid messages
            assert len(codec.encode(m)) <= 65536
        _check_invariants(n, before)
    return n


inputs = st.lists(st.one_of(
    st.tuples(st.just("step"), json_value),
    st.tuples(st.just("step"), plausible_message()),
    st.tuples(st.just("step"), valid_message()),
    st.tuples(st.just("step"), valid_message()),
    st.tuples(st.just("text"), st.text(max_size=30)),
    st.tuples(st.just("text"), valid_message().map(codec.encode)),
    st.tuples(st.just("text"), plausible_message().map(lambda m: json.dumps([1] + m))),
    st.tuples(st.just("tick"), st.integers(0, 400)),
), max_size=40)

EXAMPLES = int(os.environ.get("WRAFT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(inputs)
def test_fuzz_follower(xs):
    _feed("follower", xs)


@FUZZ
@given(inputs)
def test_fuzz_follower_with_log(xs):
    _feed("log", xs)


@FUZZ
@given(inputs)
def test_fuzz_leader(xs):
    _feed("leader", xs)


@FUZZ
@given(plausible_message())
def test_invalid_messages_are_counted_not_raised(m):
    n = _start("follower")
    n.step(m)
    if codec.problem(m) is not None:
        assert n.stats.get("dropped_malformed") == 1


@settings(max_examples=300, deadline=None)
@given(valid_message())
def test_codec_round_trips_every_valid_message(m):
    assert codec.problem(m) is None
    assert codec.decode(codec.encode(m)) == m
