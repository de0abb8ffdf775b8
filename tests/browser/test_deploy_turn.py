"""TURN for real: coturn (deploy/coturn/turnserver.conf, short-lived
credentials from a shared secret) on the namespace's address, and windows
forced to relay candidates only (?ice-transport-policy=relay), so every data
channel goes through coturn. A wrong or expired credential is said in the
status panel instead of a silent wait.

    scripts/in-netns .venv/bin/pytest tests/browser/test_deploy_turn.py -q
"""

import os
import sys
from pathlib import Path

import pytest

from browser_helpers import wait_until
from test_node_cluster import Cluster, check_convergence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from services import Coturn, have, turn_credential, turn_url  # noqa: E402

pytestmark = pytest.mark.browser
TURN_HOST = "10.77.0.1"  # scripts/in-netns's own address
SECRET = "turn-test-secret"
RELAY = "&ice-transport-policy=relay"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    if have("turnserver"):
        pytest.fail("turnserver missing: make setup-test installs coturn")
    t = Coturn(tmp_path_factory.mktemp("coturn"), TURN_HOST, SECRET, allow=[TURN_HOST]).start()
    yield t
    t.stop()


@pytest.fixture
def clusters(browser, request, coturn):
    made = []

    def make(server, tag, query=RELAY):
        c = Cluster(browser, server, "%s-%d-%d" % (tag, os.getpid(), len(made)), query=query)
        made.append(c)
        return c
    yield make
    rep = getattr(request.node, "rep_call", None)
    for c in made:
        if rep is None or rep.failed:
            c.dump()
            print("----- coturn -----\n" + coturn.log())
        c.close_all()


def turn_server_arg(username, password):
    return turn_url(TURN_HOST, 3478, username, password)


def test_relay_only_windows_form_a_cluster_through_coturn(coturn, start_introducer, clusters):
    user, password = turn_credential(SECRET, "wraft", 3600)
    srv = start_introducer("--ice-server", turn_server_arg(user, password))
    before = coturn.log().count("ALLOCATE processed, success")
    c = clusters(srv, "turn")
    for i in range(3):
        c.open(i)
    check_convergence(c)
    # Each window allocated relays on coturn with the minted username.
    log = coturn.log()
    assert log.count("ALLOCATE processed, success") - before >= 3, log[-2000:]
    assert user in log


@pytest.mark.parametrize("case", ["wrong", "expired"])
def test_bad_turn_credential_is_shown_in_the_status_panel(coturn, start_introducer, clusters, case):
    if case == "wrong":
        user, _ = turn_credential(SECRET, "wraft", 3600)
        password = "not-the-password"
    else:  # minted right, but its time is over
        user, password = turn_credential(SECRET, "wraft", -60)
    srv = start_introducer("--ice-server", turn_server_arg(user, password))
    c = clusters(srv, "turnbad-" + case)
    for i in range(2):
        c.open(i)
    page = c.pages[0]
    text = wait_until(lambda: page.evaluate(
        "() => { const e = document.querySelector('raft-status [data-raft-ice-error]');"
        " return e && e.textContent }"), timeout=20, what="the TURN error in the status panel")
    assert "401" in text and "wrong or expired" in text and TURN_HOST in text, text
    assert c.role(0) != "leader" and c.attr(0, "data-raft-readonly") == "true"
    assert c.status(0)["transport_stats"]["ice_errors"] > 0
