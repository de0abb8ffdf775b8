"""The hosting kit for real: Caddy (deploy/caddy/wraft.caddy, its internal CA)
in front of `python -m signaling`, three windows at https://wraft0.localhost,
https://wraft1.localhost, https://wraft2.localhost in a Chromium that trusts
Caddy's CA through an NSS database (no certificate errors ignored).

    scripts/in-netns .venv/bin/pytest tests/browser/test_deploy_tls.py -q
"""

import http.client
import json
import os
import socket
import ssl
import sys
from pathlib import Path

import pytest
import websockets.sync.client as ws_client

from browser_helpers import CHROMIUM, CHROMIUM_FLAGS
from test_node_cluster import check_convergence, ok_values
from wraft.cluster import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from services import Caddy, have, nss_trust  # noqa: E402

pytestmark = pytest.mark.browser
HEADERS = ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
           "Referrer-Policy", "X-Frame-Options")


@pytest.fixture(scope="module")
def caddy(server, tmp_path_factory):
    missing = have("caddy", "certutil")
    if missing:
        pytest.fail("missing %s: make setup-test installs caddy and libnss3-tools" % missing)
    c = Caddy(tmp_path_factory.mktemp("caddy"), upstream="127.0.0.1:%d" % server.port).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def trusting(browser, caddy, tmp_path_factory):
    """A second Chromium whose HOME holds an NSS database trusting Caddy's CA."""
    home = tmp_path_factory.mktemp("home")
    nss_trust(home, caddy.ca_cert)
    b = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                                    env=dict(os.environ, HOME=str(home)))
    yield b
    b.close()


@pytest.fixture
def tls_cluster(trusting, caddy, request):
    made = []

    def make(tag):
        c = Cluster(trusting, caddy, "/counter", tag=tag)
        made.append(c)
        return c
    yield make
    rep = getattr(request.node, "rep_call", None)
    for c in made:
        if rep is None or rep.failed:
            print("----- caddy -----\n" + caddy.log())
        c.close_all()


def test_three_https_subdomains_form_a_cluster_fail_over_and_reload(tls_cluster):
    c = tls_cluster("tls")
    for i in range(3):
        c.open(i)
    for i in range(3):
        page = c.pages[i]
        assert page.evaluate("location.origin") == "https://wraft%d.localhost" % i
        # a secure context: WebCrypto is there (the plain-http LAN mode has none)
        assert page.evaluate("window.isSecureContext && typeof crypto.subtle.digest") == "function"
    check_convergence(c)  # the windows met over wss://.../ws through Caddy
    lead = c.leader()
    c.close(lead)
    survivors = c.alive()
    assert c.leader(survivors) != lead
    ok_values([c.propose(survivors[0], 7)])
    c.open(lead)
    c.reload(survivors[1])
    c.leader(timeout=45)
    ok_values([c.propose(lead, 8)])
    c.same_log([7, 8], timeout=30)
    # The security headers (CSP included) broke nothing on the page.
    assert not c.errors(), c.errors()


def https_get(caddy, node, path, ctx):
    """GET over TLS to Caddy on 127.0.0.1 as wraftN.localhost (Python, unlike
    the browsers, does not map *.localhost to loopback)."""
    host = "wraft%d.localhost" % node
    conn = http.client.HTTPConnection(host, caddy.https_port, timeout=10)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", caddy.https_port), 10),
                                server_hostname=host)
    conn.request("GET", path)
    r = conn.getresponse()
    return r, r.read()


def test_headers_and_the_websocket_path_through_caddy(caddy):
    ctx = ssl.create_default_context(cafile=str(caddy.ca_cert))
    r, body = https_get(caddy, 1, "/counter", ctx)
    assert r.status == 200 and b"<raft-node" in body
    for name in HEADERS:
        assert r.headers.get(name), (name, dict(r.headers))
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    r, body = https_get(caddy, 0, "/config.json", ctx)
    assert json.loads(body) == {"v": 2, "access": "open", "turn": False, "ice_servers": []}
    # /ws answers a WebSocket handshake (the windows above used it).
    sock = socket.create_connection(("127.0.0.1", caddy.https_port), 10)
    with ws_client.connect("wss://wraft2.localhost/ws", sock=sock, ssl=ctx, proxy=None,
                           open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(json.dumps({"type": "join", "v": 2, "cluster": "hdr", "node": "2", "kind": "member"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"


def test_without_the_ca_the_browser_refuses_the_site(browser, caddy):
    # The plain test Chromium has no trust for Caddy's CA: the check above is real.
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto(caddy.base(0) + "/counter")
    finally:
        ctx.close()
