"""A keyed cluster in real Chromium (raft/cluster_key.py, TRANSPORT.md Threat
model): the key comes in the fragment and stays in the origin; signals are
sealed and each channel proves both ends hold the key and see the same DTLS
fingerprints; a window without the key, or with another, never gets a
channel; a malicious introducer that rewrites the fingerprints gets none
either (the channel fails closed)."""

import json
import re

import pytest

from browser_helpers import PYODIDE_LOAD_MS, ROOT, cluster_name, exchange_all, state, wait_mesh, \
    wait_until
from test_node_cluster import check_convergence, ok_values
from wraft.cluster import Cluster

pytestmark = pytest.mark.browser
KEY = "Kx3-test-cluster-key_0123"
EVIL = [str(ROOT / "tests" / "browser" / "evil_introducer.py")]


def harness(srv, open_window, cluster, node, fragment="", runtime=None):
    url = f"{srv.base(node)}/transport_harness?cluster={cluster}&node={node}"
    if runtime:
        url += "&runtime=" + runtime
    return open_window(url + fragment, wait_for="body[data-ready]",
                       timeout=PYODIDE_LOAD_MS if runtime == "py" else 15_000)


def test_keyed_windows_connect_and_keyless_or_wrong_key_windows_cannot(start_introducer,
                                                                        open_window):
    srv = start_introducer()
    cluster = cluster_name("keyed")
    w0 = harness(srv, open_window, cluster, 0, "#key=" + KEY)
    w1 = harness(srv, open_window, cluster, 1, "#key=" + KEY, runtime="py")  # Pyodide's hmac too
    windows = [w0, w1]
    wait_mesh(windows, timeout=30.0)
    exchange_all(windows, "sealed")
    for w in windows:
        s = state(w)
        assert s["keyed"] and s["key_error"] is None
        assert s["stats"]["proofs_verified"] >= 1 and s["stats"]["bad_proofs"] == 0
    # the key left the address bar for the origin's storage; a reload keeps working
    assert KEY not in w0.page.url and "#" not in w0.page.url
    assert w0.page.evaluate("k => localStorage.getItem(k)", "wraft.key:" + cluster) == KEY
    w0.page.reload()
    w0.page.wait_for_selector("body[data-ready]", state="attached")
    wait_mesh(windows, timeout=30.0)
    exchange_all(windows, "reloaded")
    # a window without the key, and one with another, are present but get no channel
    none = harness(srv, open_window, cluster, 2)
    other = harness(srv, open_window, cluster, 3, "#key=" + "z" * 22)
    wait_until(lambda: state(none)["stats"]["sealed_signals"] >= 1
               and state(other)["stats"]["bad_seals"] >= 1, timeout=20,
               what="the keyless and the other-key window refuse the keyed ones' signals")
    assert "keyed and we have no key" in state(none)["key_error"]
    assert state(other)["key_error"]  # the last trouble, in words
    wait_until(lambda: state(w0)["stats"]["unsealed_signals"] >= 1
               and state(w0)["stats"]["bad_seals"] >= 1, what="their signals refused")
    assert state(w0)["presence"] == ["0", "1", "2", "3"]
    for w in windows:
        assert state(w)["up"] == sorted({"0", "1"} - {state(w)["node"]})
        assert not any(p in state(w)["log"] for p in ("2", "3"))
    assert state(none)["up"] == [] and state(other)["up"] == []
    # a malformed key in a link is a clear page error, and nothing is kept
    bad = open_window(f"{srv.base(4)}/transport_harness?cluster={cluster}&node=4#key=short",
                      wait_for="body[data-error]")
    assert "cluster key has 22 to 128 characters" in bad.page.evaluate(
        "document.body.dataset.error")
    assert bad.page.evaluate("k => localStorage.getItem(k)", "wraft.key:" + cluster) is None


def test_a_malicious_introducer_rewriting_fingerprints_gets_no_channel(start_introducer,
                                                                      open_window):
    evil = start_introducer(program=EVIL)
    cluster = cluster_name("evil")
    windows = [harness(evil, open_window, cluster, n, "#key=" + KEY) for n in (0, 1)]
    wait_until(lambda: "rewrote" in evil.log(), timeout=20, what="the double rewrote an offer")
    wait_until(lambda: state(windows[1])["stats"]["bad_seals"] >= 1, timeout=20,
               what="the rewritten offer refused")
    # offers are retried (after the connect timeout): none of them gets through
    wait_until(lambda: int(re.findall(r"rewrote (\d+)", evil.log())[-1]) >= 2, timeout=30,
               what="a retried offer rewritten too")
    for w in windows:
        s = state(w)
        assert s["up"] == [] and s["events"] == [] and s["log"] == {}
        assert "do not verify" in (s["key_error"] or "") or s["stats"]["bad_seals"] == 0
    # the same windows through an honest introducer: the test could pass
    honest = start_introducer()
    cluster = cluster_name("honest")
    windows = [harness(honest, open_window, cluster, n, "#key=" + KEY) for n in (0, 1)]
    wait_mesh(windows)
    exchange_all(windows, "honest")


class LinkCluster(Cluster):
    """The counter windows opened from the landing page's links (the key only
    in their fragment); every request each window makes is recorded."""

    def __init__(self, browser, server, name, hrefs, requests):
        super().__init__(browser, server, path="/counter", name=name)
        self.hrefs = hrefs
        self.requests = requests

    def url(self, i, path=None, extra=None):
        return self.hrefs[i]

    def context(self, i):
        made = i < len(self.contexts) and self.contexts[i] is not None
        ctx = super().context(i)
        if not made:
            ctx.on("request", lambda r: self.requests.append((r.url, dict(r.headers))))
        return ctx


def test_a_keyed_cluster_from_the_landing_link_keeps_its_key_off_every_request(
        start_introducer, open_window, browser):
    srv = start_introducer("--verbose")  # the access log names every request
    requests = []
    landing = open_window(srv.base(0) + "/", wait_for="#apps tr[data-app]", record_headers=requests)
    landing.page.click("#new-cluster")
    landing.page.wait_for_selector("#cluster-keyed[data-keyed=true]", state="attached")
    name = landing.page.locator("#current-cluster").inner_text()
    hrefs = landing.page.evaluate("""() => [...document.querySelectorAll(
        '#apps tr[data-app=counter] a[data-node]')].map(a => a.getAttribute('href'))""")
    key = hrefs[0].split("#key=")[1]
    assert len(key) == 22 and all(h.endswith("#key=" + key) for h in hrefs)
    c = LinkCluster(browser, srv, name, hrefs, requests)
    try:
        for i in range(3):
            c.open(i)
        check_convergence(c)
        for i in range(3):  # the key left the address bar for the origin's storage
            assert key not in c.pages[i].url
            assert c.pages[i].evaluate("k => localStorage.getItem(k)", "wraft.key:" + name) == key
            assert c.pages[i].get_attribute("raft-status [data-raft-keyed]", "data-raft-keyed") \
                == "true"
            assert c.status(i)["transport_stats"]["proofs_verified"] >= 1
        # a reload keeps working (the kept key, no fragment)
        c.reload(1)
        assert "#" not in c.pages[1].url
        ok_values(c.propose_many(1, [7]))
        c.same_log([7])
        # the landing page's client link (the client key only) reads the state
        client_href = landing.page.evaluate(
            "document.querySelector('#apps tr[data-app=counter] a[data-client]').href")
        assert "client=1" in client_href and key not in client_href
        reader = open_window(client_href, wait_for="html[data-raft-role]")
        wait_until(lambda: json.loads(reader.page.evaluate("wraft.status()")).get("client_of")
                   is not None, timeout=20, what="the client window attached")
        assert json.loads(reader.page.evaluate("wraft.read()")) == {"ok": c.state(0)}
        # kept apart from a member's key on the same origin (wraft0's)
        assert reader.page.evaluate("k => localStorage.getItem(k)", "wraft.clientkey:" + name) \
            == client_href.split("#key=")[1]
        assert reader.page.evaluate("k => localStorage.getItem(k)", "wraft.key:" + name) is None
        # a window without the key (a client of the same cluster) gets nothing to read
        thief = open_window("%s/counter?cluster=%s&client=1" % (srv.base(2), name),
                            wait_for="html[data-raft-role]")
        wait_until(lambda: any(c.status(i)["transport_stats"]["unsealed_signals"] >= 1
                               for i in range(3)), timeout=20, what="its asks refused")
        info = json.loads(thief.page.evaluate("wraft.status()"))
        assert info["applied"] == 0 and info.get("client_of") is None
        assert thief.page.get_attribute("raft-status [data-raft-keyed]", "data-raft-keyed") \
            == "false"
        assert json.loads(thief.page.evaluate("wraft.state()")) in (0, None)
    except BaseException:
        c.dump()
        raise
    finally:
        c.close_all()
    # the key never reached the server: no request line, no Referer, no log line
    assert len(requests) > 20
    for url, headers in requests:
        assert key not in url.split("#")[0], url
        assert key not in headers.get("referer", ""), (url, headers)
    log = srv.log_path.read_text(errors="replace")
    assert "GET /counter" in log and key not in log
