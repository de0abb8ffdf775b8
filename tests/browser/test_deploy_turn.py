"""TURN for real: coturn (deploy/coturn/turnserver.conf, short-lived
credentials from a shared secret) on the namespace's address, and windows
forced to relay candidates only (?ice-transport-policy=relay), so every data
channel goes through coturn. A wrong or expired credential is said in the
status panel instead of a silent wait.

    scripts/in-netns .venv/bin/pytest tests/browser/test_deploy_turn.py -q
"""

import sys
from pathlib import Path

import pytest

from browser_helpers import wait_until
from test_node_cluster import check_convergence, make_cluster  # noqa: F401 (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from services import ALLOCATED, Coturn, have, turn_credential, turn_url  # noqa: E402

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


def turn_server_arg(username, password):
    return turn_url(TURN_HOST, 3478, username, password)


def test_relay_only_windows_form_a_cluster_through_coturn(coturn, start_introducer, make_cluster):
    user, password = turn_credential(SECRET, "wraft", 3600)
    srv = start_introducer("--ice-server", turn_server_arg(user, password))
    before = coturn.count(ALLOCATED)
    c = make_cluster(srv, "turn", query=RELAY)
    for i in range(3):
        c.open(i)
    check_convergence(c)
    # Each window allocated relays on coturn with the minted username.
    assert coturn.count(ALLOCATED) - before >= 3, coturn.log()
    assert coturn.count(user) >= 3


@pytest.mark.parametrize("case", ["wrong", "expired"])
def test_bad_turn_credential_is_shown_in_the_status_panel(coturn, start_introducer, make_cluster,
                                                        case):
    if case == "wrong":
        user, _ = turn_credential(SECRET, "wraft", 3600)
        password = "not-the-password"
    else:  # minted right, but its time is over
        user, password = turn_credential(SECRET, "wraft", -60)
    srv = start_introducer("--ice-server", turn_server_arg(user, password))
    c = make_cluster(srv, "turnbad-" + case, query=RELAY)
    for i in range(2):
        c.open(i)
    page = c.pages[0]
    text = wait_until(lambda: page.evaluate(
        "() => { const e = document.querySelector('raft-status [data-raft-ice-error]');"
        " return e && e.textContent }"), timeout=20, what="the TURN error in the status panel")
    assert "401" in text and "wrong or expired" in text and TURN_HOST in text, text
    assert c.role(0) != "leader" and c.attr(0, "data-raft-readonly") == "true"
    assert c.status(0)["transport_stats"]["ice_errors"] > 0
