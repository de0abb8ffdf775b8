"""Landing page (/): create or join a cluster, and the window links of every app."""

import re
import time

import pytest
from playwright.sync_api import expect

from browser_helpers import wait_until

pytestmark = pytest.mark.browser
APPS = ["todo", "kv", "counter", "bench"]


def links(page):
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#apps tr')].map(
        tr => [tr.dataset.app, [...tr.querySelectorAll('a[data-node]')].map(
            a => a.getAttribute('href'))]))""")


def expected(server, cluster=None):
    q = "?cluster=" + cluster if cluster else ""
    return {app: ["http://wraft%d.localhost:%d/%s%s" % (i, server.port, app, q) for i in range(3)]
            for app in APPS}


def test_links_create_and_join(server, open_window):
    w = open_window(server.base(1) + "/", wait_for="#apps tr[data-app]")
    page = w.page
    expect(page.locator("h1")).to_have_text("WRaft for Python")
    assert links(page) == expected(server)  # same port as this page, each window its own origin

    expect(page.locator("#cluster-keyed")).to_have_attribute("data-keyed", "false")
    page.click("#new-cluster")
    expect(page.locator("#current-cluster")).to_have_text(re.compile(r"^c-[a-z0-9]{8}$"))
    name = page.locator("#current-cluster").inner_text()
    # a new cluster is keyed: a fresh random key in every link's fragment
    key = re.fullmatch(r".*/\?cluster=%s#key=([A-Za-z0-9_-]{22})" % name, page.url).group(1)
    assert links(page) == {app: [u + "#key=" + key for u in urls]
                           for app, urls in expected(server, name).items()}
    expect(page.locator("#cluster-keyed")).to_have_attribute("data-keyed", "true")
    page.click("#new-cluster")
    expect(page.locator("#current-cluster")).not_to_have_text(name)
    assert key not in page.url  # each new cluster has its own key

    page.fill("#cluster-name", "bad name!")
    page.click("#join")
    expect(page.locator("#cluster-error")).to_contain_text("only A-Z a-z 0-9 _ . -")
    assert name not in str(links(page))  # the previous choice was replaced by the 2nd new one
    kept = links(page)
    page.fill("#cluster-name", "x" * 65)
    page.click("#join")
    expect(page.locator("#cluster-error")).to_contain_text("at most 64")
    assert links(page) == kept  # a bad name changes nothing

    page.fill("#cluster-name", "team-notes")
    page.press("#cluster-name", "Enter")
    expect(page.locator("#current-cluster")).to_have_text("team-notes")
    expect(page.locator("#cluster-error")).to_have_text("")
    assert links(page) == expected(server, "team-notes")  # joined by name: open
    expect(page.locator("#cluster-keyed")).to_have_attribute("data-keyed", "false")

    page.click("#no-cluster")
    assert links(page) == expected(server)
    assert not w.errors(), w.errors()


def test_cluster_from_the_url_and_a_bad_one_reported(server, open_window):
    w = open_window(server.base(0) + "/?cluster=shared-1", wait_for="#apps tr[data-app]")
    expect(w.page.locator("#current-cluster")).to_have_text("shared-1")
    assert links(w.page) == expected(server, "shared-1")
    bad = open_window(server.base(0) + "/?cluster=no%20way", wait_for="#apps tr[data-app]")
    expect(bad.page.locator("#cluster-error")).to_contain_text("?cluster=")
    assert links(bad.page) == expected(server)


def test_the_three_window_links_form_one_cluster(server, open_window):
    name = "landing-%d" % (time.time() * 1000 % 10**9)
    w = open_window(server.base(0) + "/?cluster=" + name, wait_for="#apps tr[data-app]")
    hrefs = links(w.page)["counter"]
    apps = [open_window(h, wait_for="html[data-raft-role]") for h in hrefs]
    for i, a in enumerate(apps):
        assert a.page.evaluate("document.documentElement.dataset.raftNode") == str(i)

    def roles():
        return [a.page.evaluate("document.documentElement.dataset.raftRole") for a in apps]
    wait_until(lambda: sorted(roles()) == ["follower", "follower", "leader"], timeout=20,
               what="one leader among the three linked windows")
    # "follower" is also every node's role before it hears anything: wait
    # until each window has the leader's first entry committed (so stored).
    wait_until(lambda: all(int(a.page.evaluate("document.documentElement.dataset.raftCommit") or 0) >= 1
                           for a in apps), timeout=20, what="the first entry committed on all three")
    for i, a in enumerate(apps):  # each stores its log under the chosen cluster name
        keys = a.page.evaluate("Object.keys(localStorage)")
        assert any(k.startswith("wraft:%s:%d:" % (name, i)) for k in keys), (
            keys, a.page.url, a.page.evaluate("wraft.status()"))
