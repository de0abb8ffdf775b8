"""TURN without a long-term password: joined sockets get short-lived
credentials in the TURN REST scheme coturn checks with use-auth-secret,
refreshed over the socket; nobody else gets any."""

import base64
import hashlib
import hmac
import json
import time

from signaling.turn import TurnMinter
from sig_helpers import join, open_ws, recv_json, recv_type

SECRET = "coturn-static-auth-secret"


def expected_password(username):
    # coturn: base64(HMAC-SHA1(static-auth-secret, username)), written out here
    return base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()


async def test_joined_sockets_get_short_lived_turn_credentials(make_server):
    base = await make_server(turn=TurnMinter(SECRET, ["turn:10.0.0.1:3478", "turns:10.0.0.1:5349"], ttl=600),
                             ice_servers=[{"urls": "stun:10.0.0.1:3478"}])
    ws = await open_ws(base)
    assert "ice_servers" not in ws.hello and "credential" not in json.dumps(ws.hello)  # not before joining
    ws, welcome = await join(base, "c", "0")
    stun, turn, turns = welcome["ice_servers"]
    assert stun == {"urls": "stun:10.0.0.1:3478"}
    assert turn["urls"] == "turn:10.0.0.1:3478" and turns["urls"] == "turns:10.0.0.1:5349"
    expiry, name = turn["username"].split(":")
    assert name == "0" and abs(int(expiry) - (time.time() + 600)) < 5
    assert turn["credential"] == expected_password(turn["username"]) == turns["credential"]
    await ws.close()


async def test_credentials_are_refreshed_before_they_expire(make_server):
    base = await make_server(turn=TurnMinter(SECRET, ["turn:10.0.0.1:3478"], ttl=2))
    ws, welcome = await join(base, "c", "1")
    first = welcome["ice_servers"][0]["username"]
    fresh = await recv_type(ws, "ice", timeout=4)  # at half the lifetime
    (server,) = fresh["ice_servers"]
    assert server["username"] != first and int(server["username"].split(":")[0]) >= int(first.split(":")[0])
    assert server["credential"] == expected_password(server["username"])
    # a socket that left gets no more
    await ws.send('{"type":"leave"}')
    assert (await recv_type(ws, "hello"))["type"] == "hello"
    try:
        msg = await recv_json(ws, timeout=2.5)
        raise AssertionError(f"unexpected frame after leave: {msg}")
    except TimeoutError:
        pass
    await ws.close()
