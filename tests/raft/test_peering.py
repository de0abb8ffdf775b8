"""raft/peering.py, the connection rules both transports share, against a
fake host (no network, no event loop: the fake's steps never suspend, so a
spawned coroutine runs to its end at once). Plain asserts: also run under
MicroPython and Pyodide (tests/mpy)."""
import hashlib
import hmac
import json

from raft import cluster_key, peering
from raft.peering import Channel, MessageTooLarge, Peering


def run(coro):
    try:
        while True:
            coro.send(None)
    except StopIteration:
        pass


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


class FakeChannel(Channel):
    def __init__(self, sid, now, cert="00"):
        Channel.__init__(self, sid, now)
        self.cert = cert  # stands for the DTLS certificate's fingerprint
        self.remote = None
        self.added = []
        self.ctl_sent = []
        self.sent = []  # on the raft channel
        self.net = None

    async def make_local(self, kind):
        if self.cert == "00":
            return "sdp-%s-%d" % (kind, self.sid)
        return "v=0\r\na=fingerprint:sha-256 %s:%d\r\n" % (self.cert, self.sid)

    def send(self, text):
        self.sent.append(text)
        return True

    async def set_remote(self, kind, sdp):
        if sdp == "reject":
            raise ValueError("the browser rejects this description")
        self.remote = (kind, sdp)

    def parse_ice(self, text):
        line = json.loads(text)["candidate"]
        return None if line == "" else line

    async def add_ice(self, cand):
        self.added.append(cand)

    def ctl_send(self, text):
        self.ctl_sent.append(text)

    async def bytes_received(self):
        return self.net


class Host(Peering):
    """Peering with every host hook recorded."""

    def __init__(self, node, tokens=None, cert="00", **kw):
        self.clock = 1000
        self.cert = cert
        self.nonces = 0
        self.frames = []  # what went to the introducer
        self.closed_sids = []
        self.abandoned = 0
        self.got = []
        self.events = []
        Peering.__init__(self, "c", node, on_message=lambda p, m: self.got.append((p, m)),
                         on_peer=lambda p, up: self.events.append((p, up)), tokens=tokens, **kw)
        self._stopped = False

    def _now(self):
        return self.clock

    def _rand(self):
        return 0.5

    def _nonce(self):
        self.nonces += 1
        return "%032x" % (int(self.node, 36) * 1000 + self.nonces)

    def _spawn(self, coro):
        run(coro)
        return "task"

    def _new_channel(self, peer, sid):
        return FakeChannel(sid, self.clock, self.cert)

    def _close_channel(self, conn):
        self.closed_sids.append(conn.sid)

    def _drain(self, peer):
        pass

    def _ws_send(self, frame):
        self.frames.append(frame)
        return True

    def _abandon_ws(self):
        self.abandoned += 1
        self._introducer_closed(None)

    # test helpers
    def hear(self, frame):
        self._on_ws_message(json.dumps(frame))

    def join(self, nodes):
        self._introducer_opening()
        self.hear({"type": "hello", "v": 2, "nonce": "n1", "access": "open"})
        self.hear({"type": "welcome", "v": 2, "cluster": "c", "node": self.node,
                   "token": "tok-" + self.node, "ice_servers": []})
        self.hear({"type": "presence", "cluster": "c", "nodes": nodes})

    def signals(self, t=None):
        out = [f for f in self.frames if f["type"] == "signal" and (t is None or f["data"]["t"] == t)]
        return out

    def signal_from(self, sender, data):
        self.hear({"type": "signal", "from": sender, "data": data})

    def advance(self, ms):
        self.clock += ms
        self._tick()


class Tokens:
    def __init__(self):
        self.kv = {}

    def get(self, key):
        return self.kv.get(key)

    def set(self, key, value):
        self.kv[key] = value


def test_backoff_grows_with_jitter_up_to_its_cap():
    assert peering.backoff_delay(0, (250, 10000), lambda: 0.0) == 125
    assert peering.backoff_delay(0, (250, 10000), lambda: 0.999) < 250
    assert peering.backoff_delay(3, (250, 10000), lambda: 0.0) == 1000
    assert peering.backoff_delay(40, (250, 10000), lambda: 1.0) == 10000


def test_message_rule():
    peering.check_message("x" * peering.MAX_MESSAGE_BYTES)
    raises(TypeError, peering.check_message, b"bytes")
    e = raises(MessageTooLarge, peering.check_message, "\u00e9" * (peering.MAX_MESSAGE_BYTES // 2 + 1))
    assert "65538 bytes" in str(e) and isinstance(e, ValueError)


def test_join_answers_hello_with_kind_token_and_proof():
    open_hello = {"type": "hello", "v": 2, "nonce": "abc", "access": "open"}
    frame, why = peering.join_frame(open_hello, "todo", "3", "member", None, None)
    assert why is None and frame == {"type": "join", "v": 2, "cluster": "todo", "node": "3",
                                     "kind": "member"}
    secret_hello = {"type": "hello", "v": 2, "nonce": "abc", "access": "secret"}
    frame, why = peering.join_frame(secret_hello, "todo", "c1234", "client", "T", "S")
    want = hmac.new(b"S", b"wraft-join-v2\nabc\ntodo\nc1234\nclient", hashlib.sha256).hexdigest()
    assert why is None and frame["proof"] == want and frame["token"] == "T"
    assert peering.join_frame(secret_hello, "todo", "3", "member", None, None) == (None, "auth_required")
    for nonce in (None, 5, ""):
        hello = {"type": "hello", "access": "secret", "nonce": nonce}
        assert peering.join_frame(hello, "todo", "3", "member", None, "S") == (None, "bad_hello")


def test_frames_and_signals_are_validated():
    assert peering.parse_frame('{"type": "presence", "nodes": []}')["type"] == "presence"
    for bad in ("nope", "[]", "5", '{"no": "type"}', '{"type": "join"}', '{"type": 7}'):
        assert peering.parse_frame(bad) is None, bad
    assert peering.valid_signal("1", {"t": "offer"}, "2")
    for sender, data in (("2", {"t": "offer"}), (7, {"t": "ask"}), ("1", {"t": "nope"}),
                         ("1", "str"), ("1", None)):
        assert not peering.valid_signal(sender, data, "2")
    assert peering.is_candidate_json('{"candidate": "", "sdpMid": "0"}')
    for bad in (None, "{", "[]", '{"candidate": 5}'):
        assert not peering.is_candidate_json(bad)


def test_the_smaller_id_offers_and_answers_are_matched_by_session():
    a, b = Host("1"), Host("2")
    a.join(["1", "2"])
    b.join(["1", "2"])
    offers = a.signals("offer")
    assert len(offers) == 1 and offers[0]["to"] == "2" and a.stats["offers"] == 1
    assert b.signals() == []  # "2" waits for the offer
    sid = offers[0]["data"]["s"]
    b.signal_from("1", offers[0]["data"])
    answers = b.signals("answer")
    assert answers[0]["data"] == {"t": "answer", "s": sid, "sdp": "sdp-answer-%d" % sid}
    assert b._peers["1"].conn.remote == ("offer", "sdp-offer-%d" % sid)
    b.signal_from("1", offers[0]["data"])  # a duplicate changes nothing
    assert len(b.signals("answer")) == 1
    a.signal_from("2", {"t": "answer", "s": sid + 1, "sdp": "stale"})  # another session's
    assert a._peers["2"].conn.remote is None
    a.signal_from("2", answers[0]["data"])
    assert a._peers["2"].conn.remote == ("answer", "sdp-answer-%d" % sid)
    # an offer from the side that must not offer is refused and counted
    before = b.stats["bad_signals"]
    a.signal_from("2", {"t": "offer", "s": 99, "sdp": "x"})
    assert a.stats["bad_signals"] == 1 and b.stats["bad_signals"] == before
    # a new offer (the other window reloaded) replaces the old connection
    b.signal_from("1", {"t": "offer", "s": sid + 5, "sdp": "again"})
    assert b._peers["1"].conn.sid == sid + 5 and b.closed_sids == [sid]


def test_the_answering_side_asks_after_a_while_and_an_ask_is_answered():
    b = Host("2")
    b.join(["1", "2"])
    b.advance(peering.ASK_AFTER_MS - 1)
    assert b.signals("ask") == []
    b.advance(2)
    assert [f["to"] for f in b.signals("ask")] == ["1"]
    b.advance(1)  # the next ask waits for the backoff
    assert len(b.signals("ask")) == 1
    a = Host("1", wants=lambda p: False)  # a member towards clients: never dials...
    a.join(["1", "2"])
    assert a.signals("offer") == []
    a.signal_from("2", {"t": "ask"})  # ... but answers an ask
    assert len(a.signals("offer")) == 1
    a.signal_from("2", {"t": "ask"})  # an attempt that is young is not re-made
    assert len(a.signals("offer")) == 1
    b.signal_from("1", {"t": "ask"})  # the answering side is never asked
    assert b.stats["bad_signals"] == 1


def test_candidates_wait_for_the_remote_description_and_bad_ones_are_counted():
    b = Host("2")
    b.join(["1", "2"])
    b.signal_from("1", {"t": "offer", "s": 7, "sdp": "o"})
    conn = b._peers["1"].conn
    b.signal_from("1", {"t": "ice", "s": 7, "c": json.dumps({"candidate": "cand-1"})})
    b.signal_from("1", {"t": "ice", "s": 7, "c": json.dumps({"candidate": ""})})  # end marker
    b.signal_from("1", {"t": "ice", "s": 8, "c": json.dumps({"candidate": "other sid"})})
    assert conn.added == ["cand-1"]
    b.signal_from("1", {"t": "ice", "s": 7, "c": '{"candidate": 5}'})
    assert b.stats["bad_signals"] == 1 and conn.added == ["cand-1"]
    # before its answer comes, the offerer keeps remote candidates back
    a = Host("1")
    a.join(["1", "2"])
    sid = a._peers["2"].conn.sid
    a.signal_from("2", {"t": "ice", "s": sid, "c": json.dumps({"candidate": "early"})})
    assert a._peers["2"].conn.added == []
    a.signal_from("2", {"t": "answer", "s": sid, "sdp": "ans"})
    assert a._peers["2"].conn.added == ["early"]
    # our own candidates are trickled behind our description
    a._local_candidate(a._peers["2"], a._peers["2"].conn, "mine")
    assert a.signals("ice")[-1]["data"] == {"t": "ice", "s": sid, "c": "mine"}


def test_a_description_the_peer_connection_rejects_drops_that_attempt_only():
    b = Host("2")
    b.join(["1", "2"])
    b.signal_from("1", {"t": "offer", "s": 3, "sdp": "reject"})
    assert b.stats["signal_errors"] == 1 and b._peers["1"].conn is None and b.closed_sids == [3]
    b.signal_from("1", {"t": "offer", "s": 4, "sdp": "fine"})
    assert b._peers["1"].conn.sid == 4 and b.signals("answer")


def test_an_attempt_that_never_opens_is_retried_with_backoff():
    a = Host("1")
    a.join(["1", "2"])
    first = a._peers["2"].conn.sid
    a.advance(peering.CONNECT_TIMEOUT_MS + 1)
    assert a.closed_sids == [first] and len(a.signals("offer")) == 2
    assert a._peers["2"].attempts == 2


def test_open_channels_are_kept_alive_and_a_silent_one_is_closed():
    a = Host("1")
    a.join(["1", "2"])
    peer = a._peers["2"]
    conn = peer.conn
    a._channel_opened(peer, conn)
    assert a.peers_up() == ["2"] and a.events == [("2", True)] and a.stats["channels_opened"] == 1
    a.advance(peering.PING_AFTER_MS + 1)
    assert conn.ctl_sent == ["ping"]
    a._on_ctl(peer, conn, "pong")  # a sign of life
    a.advance(peering.TICK_MS)
    assert len(conn.ctl_sent) == 1
    a._on_ctl(peer, conn, "ping")  # the peer's ping is answered
    assert conn.ctl_sent[-1] == "pong"
    conn.net = "100"  # bytes at the network level also count
    a.advance(peering.TICK_MS)
    conn.net = "200"
    a.advance(peering.DEAD_AFTER_MS - 1)
    assert a.peers_up() == ["2"]
    a.advance(peering.DEAD_AFTER_MS + 1)
    assert a.peers_up() == [] and a.stats["silent_peers_closed"] == 1
    assert a.events[-1] == ("2", False) and conn.sid in a.closed_sids
    # the peer is still present: a fresh offer follows
    assert a._peers["2"].conn is not None and a._peers["2"].conn.sid != conn.sid


def test_a_peer_that_says_bye_is_seen_down_at_once_and_we_say_bye_to_those_up():
    a = Host("1")
    a.join(["1", "2", "3"])
    p2, p3 = a._peers["2"], a._peers["3"]
    c2, c3 = p2.conn, p3.conn
    a._channel_opened(p2, c2)
    a._say_bye()
    assert c2.ctl_sent == [peering.BYE] and c3.ctl_sent == []  # only channels up
    a._on_ctl(p2, c2, peering.BYE)  # well before DEAD_AFTER_MS
    assert a.peers_up() == [] and a.events[-1] == ("2", False)
    assert a.stats["peers_said_bye"] == 1 and c2.sid in a.closed_sids
    a._on_ctl(p2, c2, peering.BYE)  # a late repeat on the old channel changes nothing
    assert a.stats["peers_said_bye"] == 2 and a._peers["2"].conn is not c2


def test_queue_limit_and_dropped_on_close():
    a = Host("1")
    a.join(["1", "2"])
    peer = a._peers["2"]
    a._channel_opened(peer, peer.conn)
    assert a._queue(peer, "x" * (peering.QUEUE_LIMIT_BYTES - 1))
    assert not a._queue(peer, "yy") and a.stats["dropped_queue_full"] == 1
    a._channel_closed(peer, peer.conn)
    assert a.stats["dropped_on_close"] == 1 and peer.queue == [] and peer.queued_bytes == 0


def test_a_member_keeps_its_token_and_presents_it():
    tokens = Tokens()
    a = Host("1", tokens=tokens)
    a.join(["1"])
    assert tokens.kv == {"wraft.token:c:1": "tok-1"}
    again = Host("1", tokens=tokens)  # a restart
    again.hear({"type": "hello", "v": 2, "nonce": "n2", "access": "open"})
    assert again.frames[-1]["token"] == "tok-1"
    c = Host("c1234", tokens=tokens)  # a client id is new every start: nothing kept
    c.join(["c1234"])
    assert c.frames[0]["kind"] == "client" and list(tokens.kv) == ["wraft.token:c:1"]


def test_fatal_refusals_stop_reconnecting_others_retry():
    for code, error in ((4409, "replaced"), (4403, "id_held"), (4401, "auth_failed")):
        h = Host("1")
        assert h._introducer_closed(code) is False and h.error == error
    h = Host("1")
    assert h._introducer_closed(1006) is True and h.error is None
    assert "1006" in h.last_error
    h.hear({"type": "error", "code": "replaced", "message": "newer socket"})
    assert h.error == "replaced" and h._introducer_closed(4409) is False
    # a server wanting a secret we lack: fatal, and the socket is left
    h = Host("1")
    h.hear({"type": "hello", "v": 2, "nonce": "n", "access": "secret"})
    assert h.error == "auth_required" and h.abandoned == 1 and h.frames == []
    h = Host("1", secret="S")
    h.hear({"type": "hello", "v": 2, "nonce": 5, "access": "secret"})
    assert h.error is None and h.stats["bad_signals"] == 1 and h.frames == []


def test_an_introducer_that_never_welcomes_is_left_and_retried():
    h = Host("1")
    h._introducer_opening()
    h.hear({"type": "hello", "v": 2, "nonce": "n", "access": "open"})
    h.advance(peering.INTRODUCER_DEADLINE_MS)
    assert h.abandoned == 0
    h.advance(peering.TICK_MS + 1)
    assert h.abandoned == 1 and h.stats["introducer_timeouts"] == 1
    assert "no welcome" in h.last_error and h.error is None
    h.advance(peering.INTRODUCER_DEADLINE_MS * 2)  # no attempt open: nothing to abandon
    assert h.abandoned == 1
    h.join(["1"])  # a welcomed socket has no deadline
    h.advance(peering.INTRODUCER_DEADLINE_MS * 2)
    assert h.abandoned == 1 and h.introducer_up


def test_welcome_and_ice_frames_bring_ice_servers_unless_fixed():
    h = Host("1")
    h.join(["1"])
    h.hear({"type": "ice", "ice_servers": [{"urls": "turn:x", "username": "u", "credential": "p"}]})
    assert h.ice_servers[0]["username"] == "u"
    fixed = Host("1", ice_servers=[])
    fixed.hear({"type": "ice", "ice_servers": [{"urls": "turn:x"}]})
    assert fixed.ice_servers == []


def test_bad_frames_and_raising_callbacks_are_counted_not_raised():
    h = Host("2")
    h.join(["1", "2"])
    for text in ("not json", '{"type": "presence", "nodes": 5}', '{"type": "signal", "from": 7}'):
        h._on_ws_message(text)
    assert h.stats["bad_signals"] == 3
    h.on_peer = None
    h.on_presence = lambda nodes: 1 / 0
    h.hear({"type": "presence", "nodes": ["1", "2", 3]})
    assert h.stats["callback_errors"] == 1 and h.presence == ["1", "2"]


KEY = "k" * 22


def relay(a, b, tamper=None):
    """Carry the signals each host sent to the other (through `tamper`,
    an introducer that may rewrite them) until both are quiet."""
    done = {a: 0, b: 0}
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            frames = src.frames[done[src]:]
            done[src] = len(src.frames)
            for f in frames:
                if f["type"] == "signal" and f["to"] == dst.node:
                    data = tamper(f["data"]) if tamper else f["data"]
                    dst.signal_from(src.node, data)
                    moved = True


def open_both(a, b):
    """Both raft channels open; each side's first message goes across."""
    pa, pb = a._peers[b.node], b._peers[a.node]
    ca, cb = pa.conn, pb.conn
    a._channel_opened(pa, ca)
    b._channel_opened(pb, cb)
    sent_a, sent_b = list(ca.sent), list(cb.sent)
    for text in sent_a:
        b._on_unproven(pb, cb, text)
    for text in sent_b:
        a._on_unproven(pa, ca, text)
    return pa, pb


def keyed_pair(key_a=KEY, key_b=KEY, tamper=None, b_id="2"):
    a = Host("1", cert="AA", key=key_a)  # b's id decides who offers: "1" < "2" < "c..."
    b = Host(b_id, cert="BB", key=key_b)
    a.join(["1", b_id])
    b.join(["1", b_id])
    relay(a, b, tamper)
    return a, b


def test_keys_are_checked_and_made_from_random_bytes():
    assert cluster_key.check_key(KEY) == KEY
    for bad in ("short", "x" * 129, "k" * 21 + "!", 5):
        e = raises((ValueError, TypeError), cluster_key.check_key, bad)
        assert "k" * 21 not in str(e)  # never repeats the key
    key = cluster_key.new_key(lambda n: bytes(range(n)))
    assert len(key) == 22 and cluster_key.check_key(key) == key
    assert cluster_key.b64url(b"\xfb\xff") == "-_8"
    raises(ValueError, lambda: Host("1", key="too-short"))


def test_a_keyed_pair_seals_signals_and_proves_the_channel_both_ways():
    a, b = keyed_pair()
    # the introducer saw no description, only sealed text it cannot forge
    for f in a.signals() + b.signals():
        assert sorted(f["data"]) == ["k", "m"]
    pa, pb = open_both(a, b)
    assert a.peers_up() == ["2"] and b.peers_up() == ["1"]
    assert a.stats["proofs_verified"] == 1 and b.stats["proofs_verified"] == 1
    assert pa.conn.sent[0].startswith(cluster_key.PROOF_PREFIX)
    assert a.key_error is None and b.key_error is None


def test_a_rewritten_fingerprint_fails_closed():
    """A malicious introducer swaps the answer's DTLS fingerprint for its own:
    the seal no longer verifies, the signal is dropped, no channel forms."""
    def swap(data):
        inner = json.loads(data["k"])
        if inner.get("t") == "answer":
            inner["sdp"] = inner["sdp"].replace("BB", "EE")
            data = dict(data, k=json.dumps(inner))
        return data
    a, b = keyed_pair(tamper=swap)
    assert a.stats["bad_seals"] >= 1 and a._peers["2"].conn.remote is None
    assert "do not verify" in a.key_error and a.peers_up() == []


def test_a_channel_whose_ends_saw_other_fingerprints_is_closed_before_any_message():
    """A key holder in the middle (or a seal bypassed): each end's view of
    the SDPs differs, so the proofs differ and both ends close."""
    a, b = keyed_pair()
    b._peers["1"].conn.offer_sdp = "v=0\r\na=fingerprint:sha-256 EE:1\r\n"
    pa, pb = open_both(a, b)
    assert a.peers_up() == [] and b.peers_up() == []
    assert a.stats["bad_proofs"] == 1 and b.stats["bad_proofs"] == 1
    assert "channel proof" in a.key_error and a.got == [] and b.got == []
    assert a.events == [] and b.events == []  # never up, not even for a moment


def test_a_proof_is_not_reflected_and_nothing_else_may_come_first():
    a, b = keyed_pair()
    pa = a._peers["2"]
    a._channel_opened(pa, pa.conn)
    a._on_unproven(pa, pa.conn, pa.conn.sent[0])  # our own proof, sent back
    assert a.peers_up() == [] and a.stats["bad_proofs"] == 1
    a, b = keyed_pair()
    pa = a._peers["2"]
    a._channel_opened(pa, pa.conn)
    a._on_unproven(pa, pa.conn, '["ae", "2", "1", 5]')  # a Raft message first
    assert a.peers_up() == [] and a.stats["bad_proofs"] == 1


def test_another_key_or_none_cannot_signal_into_a_keyed_cluster():
    a, b = keyed_pair(key_b="z" * 22)
    b.advance(peering.ASK_AFTER_MS + 1)  # b, answering, hears no offer it can open: asks
    relay(a, b)
    assert a.stats["bad_seals"] >= 1 and b.stats["bad_seals"] >= 1
    assert a._peers["2"].conn.remote is None and b._peers["1"].conn is None
    assert "do not verify with our cluster key" in b.key_error
    a, b = keyed_pair(key_b=None)
    b.key = None
    assert b.stats["sealed_signals"] >= 1 and "this cluster is keyed" in b.key_error
    b.signal_from("1", {"t": "ask"})
    a.signal_from("2", {"t": "answer", "s": 1, "sdp": "x"})  # open, unsealed
    assert a.stats["unsealed_signals"] == 1 and "no cluster key" in a.key_error


def test_a_seal_binds_sender_and_receiver():
    sealed = cluster_key.seal_signal(KEY, "c", "1", "2", {"t": "ask"})
    assert cluster_key.open_signal(KEY, "c", "1", "2", sealed) == {"t": "ask"}
    for cluster, sender, to in (("d", "1", "2"), ("c", "3", "2"), ("c", "1", "3")):
        assert cluster_key.open_signal(KEY, cluster, sender, to, sealed) is None
    for bad in (None, {"k": 5, "m": "x"}, {"k": "{}", "m": 7}, dict(sealed, m="0" * 64)):
        assert cluster_key.open_signal(KEY, "c", "1", "2", bad) is None


def test_fingerprints_are_read_from_sdp():
    sdp = ("v=0\r\na=fingerprint:SHA-256 ab:cd\r\nm=application\r\n"
           "a=fingerprint:sha-512 ee:ff\r\na=fingerprint:sha-256 AB:CD\r\n")
    assert cluster_key.sdp_fingerprints(sdp) == "sha-256 AB:CD,sha-512 EE:FF"
    assert cluster_key.sdp_fingerprints("v=0") == "" and cluster_key.sdp_fingerprints(None) == ""
    assert cluster_key.same_text("abc", "abc") and not cluster_key.same_text("abc", "abd")
    assert not cluster_key.same_text("abc", "ab") and not cluster_key.same_text(None, "a")


def test_a_client_key_serves_a_client_id_and_never_a_member_id():
    ck = cluster_key.client_key(KEY)
    assert ck.startswith("client-") and cluster_key.check_key(ck) == ck
    assert cluster_key.client_key(ck) == ck and cluster_key.member_key(ck) is None
    assert cluster_key.member_key(KEY) not in (None, KEY, ck)
    # a client window with only the client key and a member with the cluster key
    a, c = keyed_pair(key_b=ck, b_id="c1234")
    open_both(a, c)
    assert a.peers_up() == ["c1234"] and c.peers_up() == ["1"]
    # ... and a client window given the full key works too (it derives the client key)
    a, c = keyed_pair(b_id="c5678")
    open_both(a, c)
    assert a.peers_up() == ["c5678"]
    # the client key's holder posing as member id 2: it cannot even seal, members refuse
    a, b = keyed_pair(key_b=ck)
    b.advance(peering.ASK_AFTER_MS + 1)
    relay(a, b)
    assert "client key" in b.key_error and b.peers_up() == [] and a.peers_up() == []
    assert b.signals() == []  # it sent nothing it could not seal
    assert a.stats["bad_seals"] == 0  # ... so the member had nothing to refuse
    # a forged client-keyed seal from a member id does not verify with the member key
    forged = cluster_key.seal_signal(ck, "c", "2", "1", {"t": "ask"})
    a.signal_from("2", forged)
    assert a.stats["bad_seals"] == 1
