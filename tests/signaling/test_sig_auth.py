"""--secret: joins signed with HMAC-SHA256(secret, "C\\nN\\nT"), T within 120 s."""

import hashlib
import hmac
import json
import time

import pytest

from signaling.auth import check_join_auth, join_mac
from sig_helpers import assert_server_healthy, expect_close, open_ws, recv_json

SECRET = "correct horse"


def mac(secret, cluster, node, ts):
    # Written out independently of signaling.auth, as PROTOCOL.md tells clients to.
    return hmac.new(secret.encode(), f"{cluster}\n{node}\n{ts}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture
async def secret_url(make_server):
    return await make_server(secret=SECRET)


async def test_signed_join_is_accepted(secret_url):
    ts = int(time.time())
    ws = await open_ws(secret_url)
    await ws.send(json.dumps({"type": "join", "v": 1, "cluster": "c", "node": "0",
                              "auth": {"ts": ts, "mac": mac(SECRET, "c", "0", ts)}}))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()


async def test_clock_skew_within_120s_is_accepted(secret_url):
    for ts in (int(time.time()) - 100, int(time.time()) + 100):
        ws = await open_ws(secret_url)
        await ws.send(json.dumps({"type": "join", "v": 1, "cluster": "c", "node": "0",
                                  "auth": {"ts": ts, "mac": mac(SECRET, "c", "0", ts).upper()}}))
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.close()


def _bad_auths():
    """(case, auth for the time `now`, expected code). The auth is made when
    the test runs, not at collection: a suite can take minutes to get here,
    and a "future" ts made at collection would no longer be far enough off."""
    def good(now):
        return mac(SECRET, "c", "0", now)
    return [
        ("missing", lambda now: None, "auth_required"),
        ("wrong secret", lambda now: {"ts": now, "mac": mac("other", "c", "0", now)}, "auth_failed"),
        ("other node's mac", lambda now: {"ts": now, "mac": mac(SECRET, "c", "1", now)}, "auth_failed"),
        ("other cluster's mac", lambda now: {"ts": now, "mac": mac(SECRET, "d", "0", now)}, "auth_failed"),
        ("stale", lambda now: {"ts": now - 200, "mac": mac(SECRET, "c", "0", now - 200)}, "auth_failed"),
        ("future", lambda now: {"ts": now + 200, "mac": mac(SECRET, "c", "0", now + 200)}, "auth_failed"),
        ("ts as string", lambda now: {"ts": str(now), "mac": good(now)}, "auth_failed"),
        ("ts as float", lambda now: {"ts": now + 0.0, "mac": good(now)}, "auth_failed"),
        ("ts as bool", lambda now: {"ts": True, "mac": mac(SECRET, "c", "0", 1)}, "auth_failed"),
        ("mac not hex", lambda now: {"ts": now, "mac": "z" * 64}, "auth_failed"),
        ("mac truncated", lambda now: {"ts": now, "mac": good(now)[:32]}, "auth_failed"),
        ("mac missing", lambda now: {"ts": now}, "auth_failed"),
        ("auth not object", lambda now: "secret", "auth_failed"),
        ("auth list", lambda now: [now, good(now)], "auth_failed"),
    ]


@pytest.mark.parametrize("case, make_auth, code", _bad_auths(), ids=[c[0] for c in _bad_auths()])
async def test_refused_join_closes_4401(secret_url, case, make_auth, code):
    ws = await open_ws(secret_url)
    frame = {"type": "join", "v": 1, "cluster": "c", "node": "0"}
    auth = make_auth(int(time.time()))
    if auth is not None:
        frame["auth"] = auth
    await ws.send(json.dumps(frame))
    seen = await expect_close(ws, 4401)
    assert [m["code"] for m in seen] == [code]
    await assert_server_healthy_signed(secret_url)


async def assert_server_healthy_signed(base):
    ts = int(time.time())
    ws = await open_ws(base)
    await ws.send(json.dumps({"type": "join", "v": 1, "cluster": "h", "node": "9",
                              "auth": {"ts": ts, "mac": mac(SECRET, "h", "9", ts)}}))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()


async def test_auth_is_ignored_without_secret(base_url):
    ws = await open_ws(base_url)
    await ws.send(json.dumps({"type": "join", "v": 1, "cluster": "c", "node": "0",
                              "auth": {"ts": 0, "mac": "nonsense"}}))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()
    await assert_server_healthy(base_url)


def test_join_mac_matches_the_documented_formula():
    assert join_mac("k", "todo", "0", 1796000000) == mac("k", "todo", "0", 1796000000)
    assert check_join_auth("k", "todo", "0", {"ts": 1796000000, "mac": mac("k", "todo", "0", 1796000000)},
                           now=1796000120.0) is None
    assert check_join_auth("k", "todo", "0", {"ts": 1796000000, "mac": mac("k", "todo", "0", 1796000000)},
                           now=1796000121.0) == "auth_failed"
