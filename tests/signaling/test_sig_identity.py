"""Node ids are held: a newcomer without the holder's token is refused
(4403) and the holder never notices; the holder's own reload (its token)
takes the id back at once; ids are remembered for a while after their holder
left; a restarted server starts fresh."""

import asyncio
import json

import pytest

from signaling.identity import IdBook
from sig_helpers import expect_close, expect_silence, join, join_frame, open_ws, recv_json


async def refused_id(base, cluster, node, **extra):
    ws = await open_ws(base, source="127.0.0.9")
    await ws.send(json.dumps(join_frame(ws, cluster, node, **extra)))
    seen = await expect_close(ws, 4403)
    assert [m["code"] for m in seen] == ["id_held"], seen
    return seen[0]["message"]


async def test_a_stranger_cannot_take_a_held_id(base_url):
    peer, _ = await join(base_url, "c", "1")
    holder, welcome = await join(base_url, "c", "0")
    assert (await recv_json(peer))["nodes"] == ["0", "1"]
    message = await refused_id(base_url, "c", "0")
    assert "'0'" in message and "token" in message
    # with a token, but not the holder's: refused the same
    await refused_id(base_url, "c", "0", token="A" * 22)
    # the holder never noticed, presence did not move, signals still reach it
    await expect_silence(holder, 0.3)
    await expect_silence(peer, 0.1)
    await peer.send(json.dumps({"type": "signal", "to": "0", "data": "still yours"}))
    assert await recv_json(holder) == {"type": "signal", "from": "1", "data": "still yours"}
    # a token proves one id only
    other, _ = await join(base_url, "c", "2")
    await refused_id(base_url, "c", "1", token=welcome["token"])
    for ws in (peer, holder, other):
        await ws.close()


async def test_the_holders_token_takes_the_id_back_at_once(base_url):
    peer, _ = await join(base_url, "c", "1")
    old, welcome = await join(base_url, "c", "0")
    await recv_json(peer)
    new, again = await join(base_url, "c", "0", token=welcome["token"])
    assert again["token"] == welcome["token"]  # stable: a lost welcome loses nothing
    seen = await expect_close(old, 4409)
    assert seen[-1]["code"] == "replaced"
    await peer.send(json.dumps({"type": "signal", "to": "0", "data": "to the reload"}))
    assert await recv_json(new) == {"type": "signal", "from": "1", "data": "to the reload"}
    await new.close()
    await peer.close()


async def test_an_id_is_remembered_after_its_holder_left(make_server):
    base = await make_server(ids=IdBook(member_memory=0.6, client_memory=0.3))
    first, welcome = await join(base, "c", "0")
    client, client_welcome = await join(base, "c", "cab12")
    await first.close()
    await client.close()
    await asyncio.sleep(0.1)
    await refused_id(base, "c", "0")  # gone, but not forgotten
    await refused_id(base, "c", "cab12")
    back, again = await join(base, "c", "0", token=welcome["token"])  # the window comes back
    assert again["token"] == welcome["token"]
    await back.close()
    await asyncio.sleep(0.8)  # past both memories: the ids are free again, with new tokens
    member, fresh = await join(base, "c", "0")
    assert fresh["token"] != welcome["token"]
    client, fresh_client = await join(base, "c", "cab12")
    assert fresh_client["token"] != client_welcome["token"]
    await member.close()
    await client.close()


async def test_a_restarted_server_starts_fresh(make_server):
    base = await make_server()
    ws, welcome = await join(base, "c", "0")
    await ws.close()
    restarted = await make_server()  # a new process knows no token
    ws, again = await join(restarted, "c", "0")
    assert again["token"] != welcome["token"]
    await ws.close()
    ws, _ = await join(await make_server(), "c", "0", token=welcome["token"])  # a stale token is no bar
    await ws.close()


async def test_a_leave_keeps_the_id_for_its_token(base_url):
    ws, welcome = await join(base_url, "c", "0")
    await ws.send(json.dumps({"type": "leave"}))
    ws.hello = await recv_json(ws)
    await refused_id(base_url, "c", "0")
    await ws.send(json.dumps(join_frame(ws, "c", "0", token=welcome["token"])))
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.close()


def test_id_book_caps_what_it_remembers():
    book = IdBook(member_memory=100, client_memory=10, per_cluster=3, total=5)
    holders = {}
    for i in range(5):
        outcome, _ = book.claim("a", str(i), "member", None, holders.setdefault(i, object()), now=i)
        assert outcome == "new"
        book.release("a", str(i), "member", holders[i], now=i)
    # per cluster: the 3 most recently released
    assert book.remembered("a") == 3
    assert [book.claim("a", str(i), "member", None, object(), 10)[0] for i in (0, 1)] == ["new", "new"]
    for i in range(6):
        h = object()
        book.claim("b%d" % i, "0", "member", None, h, 20)
        book.release("b%d" % i, "0", "member", h, 20 + i)
    assert book.released_count <= 5  # the total is kept too
    book.expire(1000)
    assert book.released_count == 0 and not book.released


def test_id_book_expiry_per_kind():
    book = IdBook(member_memory=100, client_memory=10)
    for node, kind in (("0", "member"), ("cabcd", "client")):
        h = object()
        book.claim("c", node, kind, None, h, 0)
        book.release("c", node, kind, h, 0)
    book.expire(50)
    assert ("c", "0") in book.records and ("c", "cabcd") not in book.records
    assert book.claim("c", "0", "member", None, object(), 50)[0] == "held"
    assert book.claim("c", "cabcd", "client", None, object(), 50)[0] == "new"


@pytest.mark.parametrize("token", [None, "", "x" * 22, 7])
def test_id_book_refuses_anything_but_the_token(token):
    book = IdBook()
    holder = object()
    book.claim("c", "0", "member", None, holder, 0)
    assert book.claim("c", "0", "member", token, object(), 1) == ("held", None)
    assert book.claim("c", "0", "member", book.token("c", "0"), "new", 2) == ("reclaimed", holder)
