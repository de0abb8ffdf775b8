"""`python -m signaling --lan` across two "machines": this namespace (A) and a
second one (B) joined to it by a veth pair (10.78.0.1 <-> 10.78.0.2). The
server and windows 0, 1 run in A, window 2 in a Chromium inside B; the pages
come over plain http from A's address, one port per window. The cluster forms
across the link with host candidates, and again with every window relayed
through coturn. Plain-http LAN pages are no secure context (no WebCrypto).

    scripts/in-netns .venv/bin/pytest tests/browser/test_deploy_lan.py -q
"""

import os
import socket
import sys
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, CHROMIUM_FLAGS, Introducer, free_port
from test_node_cluster import check_convergence
from wraft.cluster import Cluster
from wraft.firefox import Mix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from services import ALLOCATED, Coturn, SecondMachine, have  # noqa: E402

pytestmark = pytest.mark.browser
SECRET = "lan-access-secret-of-32-chars-xx"  # --secret-file wants 22+ base64url characters
TURN_SECRET = "lan-turn-secret"


@pytest.fixture(scope="module")
def machine_b():
    if have("nsenter", "unshare", "ip"):
        pytest.fail("need nsenter, unshare and ip (util-linux, iproute2)")
    b = SecondMachine().start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def browser_b(browser, machine_b, tmp_path_factory):
    """A Chromium whose network is machine B's."""
    wrapper = machine_b.wrapper(tmp_path_factory.mktemp("b"), CHROMIUM)
    b = browser.browser_type.launch(executable_path=wrapper, headless=True, args=CHROMIUM_FLAGS)
    yield b
    b.close()


class LanCluster(Cluster):
    """Window i at http://<A's address>:<port + i>/counter?node=i (the URLs
    --lan prints), with the server's access secret in the fragment."""

    def __init__(self, browsers, server, address, tag, query=""):
        super().__init__(Mix(browsers), server, "/counter", name="%s-%d" % (tag, os.getpid()),
                         query=query)
        self.address = address

    def url(self, i, path="/counter"):
        return "http://%s:%d%s?node=%d&cluster=%s%s#access=%s" % (
            self.address, self.server.port + i, path, i, self.name, self.query, SECRET)


@pytest.fixture
def lan(browser, browser_b, machine_b, tmp_path, request):
    made = []

    def make(tag, server_args=(), query=""):
        # --lan serves port, port + 1, port + 2
        port = next(p for p in (free_port() for _ in range(50)) if free(p + 1) and free(p + 2))
        # all addresses of this namespace (A), as --lan does; nothing else can reach them
        (tmp_path / "access").write_text(SECRET)
        srv = Introducer(tmp_path, port=port, args=["--lan", "--host", "0.0.0.0",
                                                    "--secret-file", str(tmp_path / "access"),
                                                    *server_args])
        srv.start()
        c = LanCluster([browser, browser, browser_b], srv, machine_b.a_addr, tag, query)
        made.append((srv, c))
        return c
    yield make
    rep = getattr(request.node, "rep_call", None)
    for srv, c in made:
        if rep is None or rep.failed:
            print("----- server -----\n" + srv.log())
        c.close_all()
        srv.stop()


def free(port):
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def check_across(c, machine_b):
    for i in range(3):
        c.open(i)
    # window 2 really is on machine B, and no page here is a secure context
    assert c.pages[2].evaluate("location.host") == "%s:%d" % (machine_b.a_addr, c.server.port + 2)
    for i in range(3):
        assert c.pages[i].evaluate("[window.isSecureContext, typeof crypto.subtle]") == [
            False, "undefined"]
    check_convergence(c)  # writes from both machines, read on both, one order


def test_lan_cluster_across_two_machines(lan, machine_b):
    check_across(lan("lan"), machine_b)


def test_lan_cluster_across_two_machines_through_turn(lan, machine_b, tmp_path):
    if have("turnserver"):
        pytest.fail("turnserver missing: make setup-test installs coturn")
    turn = Coturn(tmp_path / "coturn", machine_b.a_addr, TURN_SECRET, allow=[machine_b.a_addr])
    turn.start()
    try:
        before = turn.count(ALLOCATED)
        # the introducer mints each joined window's credentials (--turn-secret)
        c = lan("lanturn", server_args=["--ice-server", "turn:%s:3478" % machine_b.a_addr,
                                        "--turn-secret", TURN_SECRET],
                query="&ice-transport-policy=relay")
        check_across(c, machine_b)
        assert turn.count(ALLOCATED) - before >= 3
    finally:
        turn.stop()
