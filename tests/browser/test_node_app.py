"""The pure parts of the app page API and the status panel, in CPython:
how a page's markup and URL become a node, and what the status shows."""

import pytest

from raft.browser.page_config import (
    QUERY, PageConfigError, client_requested, cluster_from_path, node_from_host, resolve, ws_url,
)
from raft.browser.status_html import (
    PanelState, confirm_text, html_attributes, is_read_only, last_write_text, outcome_of,
    page_role, render_html,
)


def resolve_config(attrs, host, path, query):
    """A member page's config (what resolve() gives without ?client=1)."""
    cfg = resolve(attrs, host, path, query)
    assert cfg.pop("client") is False
    return cfg


class Loc:
    def __init__(self, protocol="http:", host="wraft1.localhost:8000"):
        self.protocol, self.host = protocol, host


def test_node_id_from_host_or_query_and_cluster_from_query_markup_or_path():
    cfg = resolve_config({}, "wraft2.localhost:8000", "/counter", {})
    assert cfg == {"size": 3, "node": "2", "voters": ["0", "1", "2"], "cluster": "counter",
                   "ice_servers": None, "introducer": "/ws",
                   "snapshot_entries": 2000, "snapshot_bytes": 262144,
                   "ice_transport_policy": "all"}
    cfg = resolve_config({"size": "5", "cluster": "team", "introducer": "/sig",
                          "ice-servers": '[{"urls": "stun:127.0.0.1:3478"}]'},
                         "localhost:8000", "/todo", {"node": "4"})
    assert (cfg["node"], cfg["size"], cfg["cluster"], cfg["introducer"]) == ("4", 5, "team", "/sig")
    assert cfg["ice_servers"] == [{"urls": "stun:127.0.0.1:3478"}]
    # ?cluster= wins over the markup, ?node= over the host.
    cfg = resolve_config({"cluster": "team"}, "wraft0.localhost", "/todo", {"node": "1", "cluster": "x-1"})
    assert (cfg["node"], cfg["cluster"]) == ("1", "x-1")
    # a secret is never read from the query (the access secret comes in the fragment)
    assert "secret" not in QUERY and \
        "secret" not in resolve_config({}, "wraft0.localhost", "/kv", {"secret": "s3"})
    # relay-only ICE (diagnosing TURN): the attribute, or ?ice-transport-policy= over it
    assert resolve_config({"ice-transport-policy": "relay"}, "wraft0.localhost", "/kv",
                          {})["ice_transport_policy"] == "relay"
    assert resolve_config({"ice-transport-policy": "relay"}, "wraft0.localhost", "/kv",
                          {"ice-transport-policy": "all"})["ice_transport_policy"] == "all"
    assert node_from_host("wraft12.example.org:80") == "12"
    assert node_from_host("localhost") is None and node_from_host("wraftx.localhost") is None
    assert cluster_from_path("/") == "index" and cluster_from_path("/a/b.html") == "a.b"
    assert cluster_from_path("/we ird!") == "we_ird_"


@pytest.mark.parametrize("attrs, host, query, message", [
    ({}, "localhost", {}, "no node id"),
    ({}, "wraft64.localhost", {}, "must be a number 0..63"),
    ({}, "localhost", {"node": "-1"}, "must be a number"),
    ({}, "localhost", {"node": "1e3"}, "must be a number"),
    ({"size": "0"}, "wraft0.localhost", {}, "cluster size"),
    ({"size": "8"}, "wraft0.localhost", {}, "cluster size 1..7"),
    ({}, "wraft0.localhost", {"size": "9"}, "cluster size 1..7"),
    ({"size": "three"}, "wraft0.localhost", {}, "cluster size"),
    ({}, "wraft0.localhost", {"cluster": "bad name"}, "cluster name"),
    ({"ice-servers": "{"}, "wraft0.localhost", {}, "not JSON"),
    ({"ice-servers": '{"urls": "x"}'}, "wraft0.localhost", {}, "JSON list"),
    ({}, "wraft0.localhost", {"ice-transport-policy": "turn"}, "use all or relay"),
])
def test_bad_markup_or_url_is_a_clear_error(attrs, host, query, message):
    with pytest.raises(PageConfigError, match=message):
        resolve_config(attrs, host, "/counter", query)


def test_sizes_1_to_7_and_windows_beyond_the_bootstrap_voters():
    for size in range(1, 8):
        cfg = resolve_config({"size": str(size)}, "wraft0.localhost", "/todo", {})
        assert cfg["voters"] == [str(i) for i in range(size)] and cfg["size"] == size
    # ?size= wins over the markup (tests, experiments).
    assert resolve_config({"size": "3"}, "wraft0.localhost", "/todo", {"size": "1"})["voters"] == ["0"]
    # wraft3..63 start as windows outside the 3 bootstrap voters: still valid.
    for host, node in (("wraft3.localhost:8000", "3"), ("wraft6.localhost", "6"),
                       ("wraft63.localhost", "63")):
        cfg = resolve_config({}, host, "/todo", {})
        assert cfg["node"] == node and node not in cfg["voters"] and cfg["voters"] == ["0", "1", "2"]
    assert resolve_config({}, "localhost", "/todo", {"node": "05"})["node"] == "5"


def test_introducer_url_is_made_absolute():
    assert ws_url("/ws", Loc()) == "ws://wraft1.localhost:8000/ws"
    assert ws_url("ws", Loc("https:")) == "wss://wraft1.localhost:8000/ws"
    assert ws_url("wss://h/x", Loc()) == "wss://h/x"
    assert ws_url("//h:1/ws", Loc("https:")) == "wss://h:1/ws"


def test_client_mode_is_asked_by_query_or_markup_and_needs_no_node_id():
    assert client_requested({}, {"client": "1"})
    assert client_requested({"role": "client"}, {})
    assert not client_requested({"role": "client"}, {"client": "0"})
    assert not client_requested({}, {})
    cfg = resolve({"cluster": "notes"}, "localhost", "/todo", {"client": "1", "via": "02"})
    assert cfg == {"client": True, "cluster": "notes", "via": "2", "introducer": "/ws",
                   "ice_servers": None, "ice_transport_policy": "all"}
    cfg = resolve({"role": "client"}, "localhost", "/todo", {"ice-transport-policy": "relay"})
    assert cfg["ice_transport_policy"] == "relay"
    assert cfg["via"] is None and cfg["cluster"] == "todo"
    for attrs, query in (({}, {"via": "x"}), ({}, {"cluster": "bad name"}),
                         ({"ice-servers": "{"}, {}), ({"ice-servers": "[1]"}, {}),
                         ({"ice-transport-policy": "none"}, {})):
        with pytest.raises(PageConfigError):
            resolve(attrs, "localhost", "/todo", dict(query, client="1"))


def info(**kw):
    base = {"node": "1", "role": "follower", "term": 3, "leader": "0", "commit": 7,
            "quorum": True, "peers": ["0", "2"], "size": 3, "running": True, "error": None,
            "repaired": None, "last_write": None}
    base.update(kw)
    return base


def test_status_shows_roles_and_read_only_state():
    assert page_role(info()) == "follower"
    assert page_role(info(role="precandidate")) == "candidate"
    assert page_role(info(error="localStorage is full")) == "offline"
    assert page_role(info(running=False)) == "offline"
    assert not is_read_only(info())
    assert is_read_only(info(quorum=False)) and is_read_only(info(error="x"))
    html = render_html(info())
    for text in ["follower", ">3<", ">0<", ">7<", "2 of 2 (0, 2)", "none yet"]:
        assert text in html
    assert "read-only" not in html
    assert "read-only" in render_html(info(quorum=False, leader=None))
    html = render_html(info(error="cannot start: <damaged>"))
    assert 'role="alert"' in html and "&lt;damaged&gt;" in html and "<damaged>" not in html


def test_a_stun_turn_error_shows_while_peers_are_missing():
    why = "TURN server turn:10.0.0.1:3478 refused the <credentials> (401 Unauthorized)"
    html = render_html(info(peers=["0"], ice_error=why))
    assert "data-raft-ice-error" in html and "refused the &lt;credentials&gt; (401" in html
    assert "data-raft-ice-error" not in render_html(info(ice_error=why))  # every peer is up
    assert "data-raft-ice-error" not in render_html(info(peers=[]))


def test_the_panel_says_keyed_or_open_and_why_keyed_peers_are_missing():
    open_html = render_html(info(cluster="team"))
    assert 'data-raft-keyed="false"' in open_html and "team" in open_html and ">open<" in open_html
    keyed = render_html(info(cluster="team", keyed=True))
    assert 'data-raft-keyed="true"' in keyed and ">keyed<" in keyed
    why = "signals from node 2 do not verify with our <cluster key>"
    html = render_html(info(peers=["0"], keyed=True, key_error=why))
    assert "data-raft-key-error" in html and "our &lt;cluster key&gt;" in html
    assert "data-raft-key-error" not in render_html(info(keyed=True, key_error=why))  # all up


def test_last_write_text():
    assert last_write_text(info()) == "none yet"
    assert last_write_text(info(last_write={"committed": False, "error": None})) == "pending"
    assert last_write_text(info(last_write={"committed": False, "error": "halted"})) == "failed: halted"
    lw = {"committed": True, "error": None, "on": 3, "exact": True}
    assert last_write_text(info(last_write=lw)) == "committed on 3 of 3"
    lw = {"committed": True, "error": None, "on": 2, "exact": False}
    assert last_write_text(info(last_write=lw)) == "committed on 2+ of 3"


# ---- membership panel ------------------------------------------------------

def members_info(**kw):
    base = info(role="leader", leader="0", node="0", commit=40, peers=["1", "2", "3"],
                voters=["0", "1", "2"], learners=["3"], membership="voter",
                config_committed=True, present=["0", "1", "2", "3", "4"], cluster="team",
                peer_status={"1": {"match": 40, "recent": True, "voter": True},
                             "2": {"match": 12, "recent": False, "voter": True},
                             "3": {"match": 40, "recent": True, "voter": False}})
    base.update(kw)
    return base


def buttons(html):
    """(action, target) of every button, in order."""
    import re
    return re.findall(r'data-raft-action="([a-z_]+)"(?: data-raft-target="([^"]*)")?', html)


def test_members_table_offers_the_right_action_for_each_window():
    html = render_html(members_info())
    assert buttons(html) == [("remove", "0"), ("remove", "1"), ("remove", "2"),
                             ("promote", "3"), ("remove", "3"), ("add_learner", "4")]
    assert "3 voters, 1 learner (a majority needs 2)" in html
    assert "\u2605 leader" in html and "this window" in html
    # The leader knows contact and matches: live / not heard from / caught up.
    row = lambda i: html.split('data-raft-member="%s"' % i)[1].split("</tr>")[0]
    assert "live" in row("1") and "not heard from" in row("2")
    assert "live, caught up" in row("3")
    assert "live, caught up" in render_html(members_info(commit=100))  # in flight: a batch
    assert "catching up (65 entries behind)" in render_html(members_info(commit=105))
    # A follower knows only its own channels.
    html = render_html(members_info(role="follower", node="1", leader="0", peer_status=None,
                                    peers=["0", "3"]))
    assert "not connected" in html.split('data-raft-member="2"')[1].split("</tr>")[0]
    # Last write and peers count voters / members, not the page's size.
    lw = {"committed": True, "error": None, "on": 3, "exact": True}
    html = render_html(members_info(voters=["0", "1", "2", "3", "4"], learners=[], last_write=lw))
    assert "committed on 3 of 5" in html and "3 of 4 (1, 2, 3)" in html


def test_a_window_outside_the_cluster_says_so_and_offers_no_controls():
    i = members_info(node="4", role="follower", leader=None, quorum=False, membership="none",
                     peer_status=None, peers=[])
    html = render_html(i)
    assert "This window (node 4) is not a member of cluster team" in html
    assert "add it from a member's status panel" in html
    assert buttons(html) == [] and "read-only" not in html
    assert "members as this window last knew them: 3 voters" in html
    assert is_read_only(i)
    attrs = dict(html_attributes(i))
    assert attrs["data-raft-membership"] == "none" and attrs["data-raft-readonly"] == "true"
    assert attrs["data-raft-voters"] == "0,1,2" and attrs["data-raft-learners"] == "3"
    # A learner with a leader may write (its writes go to the leader).
    learner = members_info(node="3", role="follower", membership="learner", peer_status=None)
    assert not is_read_only(learner) and "is a learner" in render_html(learner)
    # Before membership is known (older core / not started) nothing is drawn.
    assert "members" not in render_html(info())
    assert dict(html_attributes(info()))["data-raft-voters"] is None


def test_every_change_is_confirmed_first_and_one_runs_at_a_time():
    p = PanelState()
    assert p.click("confirm") is None  # nothing asked yet
    assert p.click("remove", "2") is None and p.confirm == ("remove", "2")
    html = render_html(members_info(), p)
    assert "Remove node 2 from the cluster?" in html and "2 voters (a majority needs 2)" in html
    assert ("confirm", "") in buttons(html) and ("cancel", "") in buttons(html)
    assert 'data-raft-action="remove" data-raft-target="1" disabled' in html
    assert p.click("cancel") is None and p.confirm is None
    assert "Remove node 2" not in render_html(members_info(), p)
    p.click("promote", "3")
    assert p.click("confirm") == ("promote", "3") and p.busy == ("promote", "3")
    assert "Working: promoting node 3" in render_html(members_info(), p)
    assert p.click("remove", "1") is None and p.confirm is None  # busy: ignored
    p.finish("promote", "3", {"ok": {"voters": ["0", "1", "2", "3"], "learners": []}})
    html = render_html(members_info(), p)
    assert 'data-raft-outcome="ok"' in html
    assert "Done: node 3 is now a voter (voters: 0, 1, 2, 3; learners: none)." in html
    p.click("dismiss")
    assert p.outcome is None


def test_confirmation_texts_name_the_consequences():
    i = members_info()
    assert "It is the leader: it hands over" in confirm_text("remove", "0", i)
    assert "this window (node 0)" in confirm_text("remove", "0", i)
    assert confirm_text("remove", "3", i).startswith("Remove learner 3 from the cluster?")
    assert "as a learner" in confirm_text("add_learner", "4", i)
    assert "4 voters (a majority needs 3)" in confirm_text("promote", "3", i)
    one = members_info(voters=["0"], learners=[])
    assert "0 voters" in confirm_text("remove", "0", one)


def test_outcomes_in_plain_words():
    reason = "removing 1 would leave 1 live voter of 2 (a majority needs 2)"
    assert outcome_of("remove", "1", {"error": "unsafe", "reason": reason}) == \
        ("refused", "Refused: " + reason + ".")
    kind, text = outcome_of("promote", "4", {"error": "invalid", "reason": "4 is not a learner"})
    assert kind == "refused" and text == "Refused: 4 is not a learner."
    kind, text = outcome_of("remove", "1", {"error": "conf_pending", "reason": "entry 9 not committed"})
    assert kind == "failed" and "still in progress" in text and "entry 9" in text
    assert "no leader could be reached (no_leader)" in outcome_of("remove", "1", {"error": "no_leader"})[1]
    assert outcome_of("remove", "1", {"error": "halted"}) == ("failed", "Failed: this node has stopped.")
    kind, text = outcome_of("add_learner", "4", {"ok": {"voters": ["0"], "learners": ["4"]}})
    assert kind == "ok" and "node 4 was added as a learner" in text
    # Reasons are escaped in the page.
    p = PanelState()
    p.finish("remove", "1", {"error": "unsafe", "reason": "<b>x</b>"})
    assert "&lt;b&gt;x&lt;/b&gt;" in render_html(members_info(), p)


def test_a_client_window_shows_its_member_not_a_term_or_peers():
    html = render_html({"node": "c0123456789ab", "role": "client", "client_of": "2", "leader": "0",
                        "applied": 41, "running": True, "quorum": True, "size": 3, "term": 0,
                        "peers": ["2"], "last_write": None})
    assert "client of node 2" in html and 'data-raft-field="applied">41<' in html
    assert 'data-raft-field="term"' not in html and 'data-raft-field="peers"' not in html
    assert "connecting to a member" in render_html({"node": "c1", "role": "client", "running": True})


# ---- the App handle (raft/browser/app.py) -----------------------------------

class FakeRuntime:
    """What the App handle reads of a running runtime."""

    def __init__(self):
        self.applied_index = 0
        self.quorum = True

    def status(self):
        return {"quorum": self.quorum}


def test_views_render_once_at_start_and_once_per_applied_batch():
    from raft.browser.app import App
    renders = []
    app = App(object(), {"node": "1"}, on_change=lambda s: renders.append("up front"))
    rt = app.runtime = FakeRuntime()
    app._changed(rt)  # the runtime started: its first notification
    assert renders == ["up front"]
    app.on_change(lambda s: renders.append("later"))  # registered after start: drawn now
    assert renders == ["up front", "later"]
    app._changed(rt)  # a role or connection change: nothing new applied
    assert renders == ["up front", "later"]
    rt.applied_index = 3
    app._changed(rt)
    assert renders == ["up front", "later", "up front", "later"]


def test_the_handle_of_a_page_that_could_not_start():
    import asyncio
    from raft.browser.app import App
    from raft.runtime.contract import ProposalError
    app = App(object(), {})
    app.error = "cannot start: damaged"
    assert app.read_only and app.applied_index == 0 and app.node_id is None
    for call in (app.propose(1), app.read(), app.change_membership("remove", "2")):
        with pytest.raises(ProposalError) as e:
            asyncio.run(call)
        assert e.value.error == "halted" and not e.value.retryable
    assert asyncio.run(app.membership_action("remove", "2"))["error"] == "halted"
    assert app.status() == {"node": "?", "running": False, "error": "cannot start: damaged",
                            "size": 0, "cluster": None}


def test_the_handle_reads_the_running_runtime():
    from raft.browser.app import App
    app = App(object(), {"node": "4", "cluster": "c"})
    rt = app.runtime = FakeRuntime()
    rt.applied_index = 9
    assert (app.node_id, app.applied_index, app.read_only) == ("4", 9, False)
    rt.quorum = False
    assert app.read_only
