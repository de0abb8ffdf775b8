"""Landing page helpers (components/landing.py): cluster names and window links."""

import random

import pytest

from components.landing import (APPS, check_cluster_name, new_cluster_name, render_apps_html,
                                split_host, window_urls)
from raft.browser.page_config import valid_name


def test_new_cluster_names_are_valid_and_differ():
    rng = random.Random(1)
    names = {new_cluster_name(rng.random) for _ in range(200)}
    assert len(names) == 200
    assert all(valid_name(n) and n.startswith("c-") and len(n) == 10 for n in names)
    assert new_cluster_name(lambda: 0.999999) == "c-99999999"


@pytest.mark.parametrize("name,problem", [
    ("", "enter a cluster name"), ("ok-name_1.2", None), ("x" * 64, None),
    ("x" * 65, "at most 64"), ("has space", "' '"), ("a/b", "'/'"),
])
def test_check_cluster_name(name, problem):
    got = check_cluster_name(name)
    if problem is None:
        assert got is None
    else:
        assert problem in got


def test_split_host():
    assert split_host("wraft1.localhost:8000") == ("wraft1.localhost", 8000)
    assert split_host("example.org", "https:") == ("example.org", 443)
    assert split_host("[::1]:9000") == ("[::1]", 9000)


def test_links_on_localhost_use_wraft_subdomains_and_the_same_port():
    assert window_urls("http:", "wraft2.localhost:8123", "/todo", "team") == [
        "http://wraft0.localhost:8123/todo?cluster=team",
        "http://wraft1.localhost:8123/todo?cluster=team",
        "http://wraft2.localhost:8123/todo?cluster=team",
    ]
    assert window_urls("http:", "localhost:8000", "/kv")[1] == "http://wraft1.localhost:8000/kv"


def test_links_on_real_subdomains_keep_the_domain_and_default_port():
    assert window_urls("https:", "wraft0.example.org", "/kv", "c-1") == [
        "https://wraft%d.example.org/kv?cluster=c-1" % i for i in range(3)]
    assert window_urls("https:", "example.org", "/kv")[2] == "https://wraft2.example.org/kv"


def test_links_on_a_lan_address_use_consecutive_ports_and_node_query():
    assert window_urls("http:", "192.168.1.20:8001", "/todo", "x", current_node="1") == [
        "http://192.168.1.20:8000/todo?node=0&cluster=x",
        "http://192.168.1.20:8001/todo?node=1&cluster=x",
        "http://192.168.1.20:8002/todo?node=2&cluster=x",
    ]
    assert window_urls("http:", "10.0.0.5:9000", "/kv")[0] == "http://10.0.0.5:9000/kv?node=0"


def test_apps_table_lists_every_app_with_three_window_links_and_a_client_link():
    html = render_apps_html("http:", "wraft0.localhost:8000", "c-abc")
    for path, _, _ in APPS:
        assert 'data-app="%s"' % path[1:] in html
        for i in range(3):
            assert 'href="http://wraft%d.localhost:8000%s?cluster=c-abc"' % (i, path) in html
    assert html.count("<a ") == 4 * len(APPS) == 16 and html.count("data-client") == len(APPS)


def test_a_keyed_cluster_has_its_key_in_the_fragment_of_every_link():
    key = "K" * 22
    urls = window_urls("http:", "localhost:8000", "/todo", "team", key=key)
    assert urls == ["http://wraft%d.localhost:8000/todo?cluster=team#key=%s" % (i, key)
                    for i in range(3)]
    lan = window_urls("http:", "10.0.0.5:9000", "/kv", "x", key=key)
    assert all(u.endswith("?node=%d&cluster=x#key=%s" % (i, key)) for i, u in enumerate(lan))
    assert "#key=" + key in render_apps_html("http:", "localhost:8000", "team", key=key)
    assert "#" not in render_apps_html("http:", "localhost:8000", "team")  # open


def test_client_links_carry_only_the_client_key():
    from components.landing import client_url
    from raft.cluster_key import client_key
    key = "K" * 22
    url = client_url("http:", "localhost:8000", "/todo", "team", key=key)
    assert url == "http://wraft0.localhost:8000/todo?cluster=team&client=1#key=" + client_key(key)
    assert key not in url.split("#key=")[1]
    assert client_url("http:", "localhost:8000", "/kv") == "http://wraft0.localhost:8000/kv?client=1"
    assert 'data-client' in render_apps_html("http:", "localhost:8000", "team", key=key)
