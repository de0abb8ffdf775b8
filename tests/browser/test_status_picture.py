"""The status panel's picture (raft/browser/status_picture.py) and its text
alternatives, in CPython: what each window can know is drawn, nothing else."""

import re
import xml.etree.ElementTree as ET

from raft.browser.status_html import render_members
from raft.browser.status_picture import live_text, picture_svg, row_label, rows_of

SVG = "{http://www.w3.org/2000/svg}"


def leader_info(**kw):
    base = {"node": "0", "role": "leader", "term": 4, "leader": "0", "commit": 40, "applied": 39,
            "last_index": 42, "snapshot_index": 10, "quorum": True, "peers": ["1", "2", "3"],
            "size": 3, "running": True, "error": None, "voters": ["0", "1", "2"],
            "learners": ["3"], "membership": "voter", "present": ["0", "1", "2", "3"],
            "cluster": "team", "clients": ["c1"], "present_clients": ["c1", "c9"],
            "peer_status": {"1": {"match": 40, "recent": True, "voter": True},
                            "2": {"match": 12, "recent": False, "voter": True},
                            "3": {"match": 38, "recent": True, "voter": False}}}
    base.update(kw)
    return base


def follower_info(**kw):
    base = leader_info(node="1", role="follower", leader="0", peer_status=None, peers=["0"],
                       clients=[], present_clients=[],
                       election={"left_ms": 1500, "timeout_ms": 3000})
    base.update(kw)
    return base


def parse(svg):
    # The markup goes through innerHTML; it must also be well-formed XML.
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def node_groups(svg):
    return {g.get("data-raft-pic-node"): g for g in parse(svg).iter(SVG + "g")
            if g.get("data-raft-pic-node") is not None}


def test_the_leader_draws_every_member_with_its_match_and_liveness():
    svg = picture_svg(leader_info())
    groups = node_groups(svg)
    assert list(groups) == ["0", "1", "2", "3"]  # voters, then the learner apart
    assert [g.get("data-raft-pic-role") for g in groups.values()] == \
        ["leader", "follower", "unknown", "follower"]
    assert [g.get("data-raft-pic-kind") for g in groups.values()] == \
        ["voter", "voter", "voter", "learner"]
    for g in groups.values():  # every member row can take the keyboard focus
        assert g.get("tabindex") == "0" and g.get("role") == "listitem" and g.get("aria-label")
    assert "node 0, this window, leader, term 4; log 11\u201342, snapshot to 10, commit 40, " \
           "applied 39" == groups["0"].get("aria-label")
    assert groups["1"].get("aria-label") == "node 1, follower, term 4, live; match 40"
    # No answer lately: not known to be a follower of this term, drawn dashed and stale.
    assert groups["2"].get("aria-label") == "node 2, voter, not heard from; match 12"
    dots = {n: g.find(SVG + "circle[@class='raft-dot raft-dashed']") for n, g in groups.items()}
    assert dots["2"] is not None and dots["1"] is None
    assert groups["2"].find(SVG + "rect[@class='raft-match raft-stale']") is not None
    assert groups["3"].get("aria-label").startswith("node 3, learner, follower, term 4, live")
    # The leader is marked; it has no election timer.
    assert groups["0"].find(SVG + "text[@class='raft-star']") is not None
    assert "raft-ring" not in svg
    # Client windows apart: the one served here and the one elsewhere.
    assert 'data-raft-pic-client="c1"' in svg and "1 served by this window, 1 by other members" in svg


def bar_width(group, cls):
    rect = group.find(SVG + "rect[@class='%s']" % cls)
    return float(rect.get("width"))


def test_bars_share_one_scale_so_lag_is_visible():
    groups = node_groups(picture_svg(leader_info()))
    # span: 12 (the lowest index known) .. 42 (the last); node 2 is at 12, node 1 at 40
    assert bar_width(groups["2"], "raft-match raft-stale") == 0
    assert bar_width(groups["1"], "raft-match") > bar_width(groups["3"], "raft-match") > 200
    log = groups["0"].find(SVG + "rect[@class='raft-log']")
    assert float(log.get("x")) == 250  # the snapshot (10) is left of the span
    assert bar_width(groups["0"], "raft-committed") < bar_width(groups["0"], "raft-log")
    # A cluster far along still shows at least the last 20 indexes.
    svg = picture_svg(leader_info(commit=100000, applied=100000, last_index=100000,
                                  snapshot_index=99000,
                                  peer_status={"1": {"match": 100000, "recent": True}}))
    assert "log index 99980" in svg and ">100000<" in svg


def test_a_follower_knows_its_leader_but_not_the_other_followers():
    rows = {r["id"]: r for r in rows_of(follower_info())}
    assert (rows["0"]["role"], rows["0"]["term"], rows["0"]["contact"]) == ("leader", 4, "connected")
    assert (rows["2"]["role"], rows["2"]["term"], rows["2"]["contact"]) == (None, None, "not connected")
    assert row_label(rows["2"]) == "node 2, voter, not connected; log not known here"
    svg = picture_svg(follower_info())
    groups = node_groups(svg)
    assert groups["0"].find(SVG + "text[@class='raft-star']") is not None
    # Its election timer: half of the ring left, draining to empty in 1.5 s.
    ring = parse(svg).find(".//" + SVG + "circle[@class='raft-ring']")
    assert ring.get("data-raft-election-left") == "1500"
    assert abs(float(ring.get("stroke-dashoffset")) - 106.8 / 2) < 0.1
    anim = ring.find(SVG + "animate")
    assert anim.get("dur") == "1500ms" and anim.get("to") == "106.8"
    assert "clients" not in svg  # none served here, none seen


def test_a_window_not_running_draws_nothing_and_a_client_draws_its_member():
    assert picture_svg({"node": "1", "running": False, "error": "cannot start"}) == ""
    svg = picture_svg({"node": "c42", "role": "client", "client_of": "2", "running": True})
    assert "this window is a client of node 2" in svg and 'data-raft-pic-client="c42"' in svg
    parse(svg)


def test_names_and_messages_are_escaped():
    svg = picture_svg(leader_info(error=None, term='<b>"x"</b>'))
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    parse(svg)


def test_the_live_summary_names_the_situation_not_every_commit():
    assert live_text(leader_info()) == ("Node 0 is leader in term 4; 3 of 3 peers connected; "
                                        "writable.")
    assert live_text(leader_info(commit=41)) == live_text(leader_info())
    assert live_text(follower_info(quorum=False, leader=None)) == (
        "Node 1 is follower in term 4; leader: none; 1 of 3 peers connected; read-only.")
    assert live_text(leader_info(error="localStorage is full")).startswith("Node 0 stopped")
    assert "not a member of cluster team" in live_text(follower_info(membership="none"))
    assert "client of node 2" in live_text({"node": "c1", "role": "client", "client_of": "2",
                                            "running": True, "quorum": True})


def test_the_members_table_has_column_headers_and_keyed_controls():
    html = render_members(leader_info())
    assert html.startswith("<table><caption")
    assert re.findall(r'<th scope="col">([a-z]+)</th>', html) == ["node", "membership", "state",
                                                                 "actions"]
    keys = re.findall(r'data-raft-key="([^"]+)"', html)
    assert keys == ["remove:0", "remove:1", "remove:2", "promote:3", "remove:3"]
    assert len(set(keys)) == len(keys)  # the focus goes back to the same control
