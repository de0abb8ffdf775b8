"""The pure parts of the app page API and the status component, in CPython:
how a page's markup and URL become a node, and what the status shows."""

import sys
from pathlib import Path

import pytest

# components/ is not an installed package (pyproject lists raft, signaling,
# benchmarks); import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.status import is_read_only, last_write_text, page_role, render_html
from raft.browser.app import (
    PageConfigError, cluster_from_path, node_from_host, resolve_config, ws_url,
)


class Loc:
    def __init__(self, protocol="http:", host="wraft1.localhost:8000"):
        self.protocol, self.host = protocol, host


def test_node_id_from_host_or_query_and_cluster_from_query_markup_or_path():
    cfg = resolve_config({}, "wraft2.localhost:8000", "/counter", {})
    assert cfg == {"size": 3, "node": "2", "voters": ["0", "1", "2"], "cluster": "counter",
                   "ice_servers": None, "introducer": "/ws", "secret": None}
    cfg = resolve_config({"size": "5", "cluster": "team", "introducer": "/sig",
                          "ice-servers": '[{"urls": "stun:127.0.0.1:3478"}]'},
                         "localhost:8000", "/todo", {"node": "4"})
    assert (cfg["node"], cfg["size"], cfg["cluster"], cfg["introducer"]) == ("4", 5, "team", "/sig")
    assert cfg["ice_servers"] == [{"urls": "stun:127.0.0.1:3478"}]
    # ?cluster= wins over the markup, ?node= over the host.
    cfg = resolve_config({"cluster": "team"}, "wraft0.localhost", "/todo", {"node": "1", "cluster": "x-1"})
    assert (cfg["node"], cfg["cluster"]) == ("1", "x-1")
    # ?secret= signs the join when the server was started with --secret.
    assert resolve_config({}, "wraft0.localhost", "/kv", {"secret": "s3"})["secret"] == "s3"
    assert node_from_host("wraft12.example.org:80") == "12"
    assert node_from_host("localhost") is None and node_from_host("wraftx.localhost") is None
    assert cluster_from_path("/") == "index" and cluster_from_path("/a/b.html") == "a.b"
    assert cluster_from_path("/we ird!") == "we_ird_"


@pytest.mark.parametrize("attrs, host, query, message", [
    ({}, "localhost", {}, "no node id"),
    ({}, "wraft3.localhost", {}, "must be a number 0..2"),
    ({}, "localhost", {"node": "-1"}, "must be a number"),
    ({"size": "0"}, "wraft0.localhost", {}, "cluster size"),
    ({"size": "three"}, "wraft0.localhost", {}, "cluster size"),
    ({}, "wraft0.localhost", {"cluster": "bad name"}, "cluster name"),
    ({"ice-servers": "{"}, "wraft0.localhost", {}, "not JSON"),
    ({"ice-servers": '{"urls": "x"}'}, "wraft0.localhost", {}, "JSON list"),
])
def test_bad_markup_or_url_is_a_clear_error(attrs, host, query, message):
    with pytest.raises(PageConfigError, match=message):
        resolve_config(attrs, host, "/counter", query)


def test_introducer_url_is_made_absolute():
    assert ws_url("/ws", Loc()) == "ws://wraft1.localhost:8000/ws"
    assert ws_url("ws", Loc("https:")) == "wss://wraft1.localhost:8000/ws"
    assert ws_url("wss://h/x", Loc()) == "wss://h/x"
    assert ws_url("//h:1/ws", Loc("https:")) == "wss://h:1/ws"


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


def test_last_write_text():
    assert last_write_text(info()) == "none yet"
    assert last_write_text(info(last_write={"committed": False, "error": None})) == "pending"
    assert last_write_text(info(last_write={"committed": False, "error": "halted"})) == "failed: halted"
    lw = {"committed": True, "error": None, "on": 3, "exact": True}
    assert last_write_text(info(last_write=lw)) == "committed on 3 of 3"
    lw = {"committed": True, "error": None, "on": 2, "exact": False}
    assert last_write_text(info(last_write=lw)) == "committed on 2+ of 3"
