"""The access secret: joins prove it with HMAC-SHA256 over the server's nonce
(PROTOCOL.md, Access secret); a proof cannot be replayed on another socket."""

import hashlib
import hmac
import json
import os

import pytest

from signaling.auth import join_proof, load_secret_file, new_secret, proof_is_valid
from sig_helpers import assert_server_healthy, expect_close, join, join_frame, open_ws, recv_json

SECRET = new_secret()


def proof(secret, nonce, cluster, node, kind):
    # Written out independently of signaling.auth, as PROTOCOL.md tells clients to.
    msg = f"wraft-join-v2\n{nonce}\n{cluster}\n{node}\n{kind}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


@pytest.fixture
async def secret_url(make_server):
    return await make_server(access_secret=SECRET)


async def test_hello_says_whether_the_secret_is_needed(base_url, secret_url):
    open_ws_, secret_ws = await open_ws(base_url), await open_ws(secret_url)
    assert open_ws_.hello["access"] == "open" and secret_ws.hello["access"] == "secret"
    for ws in (open_ws_, secret_ws):
        assert ws.hello["v"] == 2 and len(ws.hello["nonce"]) == 22
    assert open_ws_.hello["nonce"] != secret_ws.hello["nonce"]


async def test_proven_join_is_accepted(secret_url):
    ws = await open_ws(secret_url)
    await ws.send(json.dumps({"type": "join", "v": 2, "cluster": "c", "node": "0", "kind": "member",
                              "proof": proof(SECRET, ws.hello["nonce"], "c", "0", "member")}))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()


def _bad_proofs():
    """(case, proof for (secret, nonce), expected code)."""
    return [
        ("missing", lambda n: None, "auth_required"),
        ("wrong secret", lambda n: proof(new_secret(), n, "c", "0", "member"), "auth_failed"),
        ("other node", lambda n: proof(SECRET, n, "c", "1", "member"), "auth_failed"),
        ("other cluster", lambda n: proof(SECRET, n, "d", "0", "member"), "auth_failed"),
        ("other kind", lambda n: proof(SECRET, n, "c", "0", "client"), "auth_failed"),
        ("other nonce", lambda n: proof(SECRET, "A" * 22, "c", "0", "member"), "auth_failed"),
        ("upper case hex", lambda n: proof(SECRET, n, "c", "0", "member").upper(), "auth_failed"),
        ("truncated", lambda n: proof(SECRET, n, "c", "0", "member")[:32], "auth_failed"),
        ("not hex", lambda n: "z" * 64, "auth_failed"),
        ("a number", lambda n: 10 ** 400, "auth_failed"),
        ("an object", lambda n: {"mac": proof(SECRET, n, "c", "0", "member")}, "auth_failed"),
    ]


@pytest.mark.parametrize("case, make_proof, code", _bad_proofs(), ids=[c[0] for c in _bad_proofs()])
async def test_refused_join_closes_4401(secret_url, case, make_proof, code):
    ws = await open_ws(secret_url)
    frame = {"type": "join", "v": 2, "cluster": "c", "node": "0", "kind": "member"}
    p = make_proof(ws.hello["nonce"])
    if p is not None:
        frame["proof"] = p
    await ws.send(json.dumps(frame))
    seen = await expect_close(ws, 4401)
    assert [m["code"] for m in seen] == [code]
    healthy, _ = await join(secret_url, "h", "9", secret=SECRET)
    await healthy.close()


async def test_a_captured_join_cannot_be_replayed(secret_url):
    """A sniffed join frame is worth nothing on another socket: its nonce is
    that socket's own, and it is spent by the join."""
    victim = await open_ws(secret_url)
    captured = join_frame(victim, "c", "0", secret=SECRET)
    await victim.send(json.dumps(captured))
    assert (await recv_json(victim))["type"] == "welcome"
    await victim.close()  # the victim goes away: its id is free for its token only
    replay = await open_ws(secret_url)
    await replay.send(json.dumps(captured))
    assert [m["code"] for m in await expect_close(replay, 4401)] == ["auth_failed"]
    # and on the victim's own socket, after a leave, the spent nonce is gone too
    again = await open_ws(secret_url)
    frame = join_frame(again, "c", "1", secret=SECRET)
    await again.send(json.dumps(frame))
    assert (await recv_json(again))["type"] == "welcome"
    await recv_json(again)  # presence
    await again.send(json.dumps({"type": "leave"}))
    hello = await recv_json(again)
    assert hello["type"] == "hello" and hello["nonce"] != again.hello["nonce"]
    await again.send(json.dumps(frame))  # the old proof, the old nonce
    assert [m["code"] for m in await expect_close(again, 4401)] == ["auth_failed"]


async def test_a_v1_auth_field_with_a_huge_ts_is_just_no_proof(secret_url, caplog):
    """Issue 11: auth.ts = 10**400 raised OverflowError with a traceback per frame."""
    ws = await open_ws(secret_url)
    await ws.send(json.dumps({"type": "join", "v": 2, "cluster": "c", "node": "0", "kind": "member",
                              "auth": {"ts": 10 ** 400, "mac": "0" * 64}}))
    assert [m["code"] for m in await expect_close(ws, 4401)] == ["auth_required"]
    assert "Traceback" not in caplog.text


async def test_no_secret_no_proof_needed(base_url):
    ws = await open_ws(base_url)
    await ws.send(json.dumps({"type": "join", "v": 2, "cluster": "c", "node": "0", "kind": "member",
                              "proof": "nonsense"}))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()
    await assert_server_healthy(base_url)


def test_join_proof_matches_the_documented_formula():
    s = new_secret()
    assert join_proof(s, "n" * 22, "todo", "0", "member") == proof(s, "n" * 22, "todo", "0", "member")
    assert proof_is_valid(s, "n" * 22, "todo", "0", "member", proof(s, "n" * 22, "todo", "0", "member"))
    assert not proof_is_valid(s, "n" * 22, "todo", "0", "member", proof(s, "m" * 22, "todo", "0", "member"))


def test_secrets_are_high_entropy():
    a, b = new_secret(), new_secret()
    assert a != b and len(a) == 32  # 192 bits of base64url


def test_secret_file_is_made_once_private_and_kept(tmp_path):
    path = tmp_path / "access"
    first = load_secret_file(path)
    assert len(first) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert load_secret_file(path) == first  # the same links after a restart


@pytest.mark.parametrize("text", ["", "password", "short-but-ok-chars", "x" * 21, "spaces are bad " * 3,
                                  "é" * 30, "a" * 129])
def test_weak_or_malformed_secret_file_is_refused(tmp_path, text):
    path = tmp_path / "access"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match="22-128 characters"):
        load_secret_file(path)
