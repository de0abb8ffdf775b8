"""Small pure pieces: ICE server parsing, the token bucket, CLI helpers."""

import argparse

import pytest

from signaling.__main__ import is_loopback, more_windows_hint, parse_args, startup_warnings, window_urls
from signaling.ice import parse_ice_server
from signaling.ratelimit import TokenBucket
from signaling.static import StaticSite


@pytest.mark.parametrize("text, server", [
    ("stun:10.0.0.1:3478", {"urls": "stun:10.0.0.1:3478"}),
    ("stun:stun.example.org", {"urls": "stun:stun.example.org"}),
    ("STUN:host:1", {"urls": "stun:host:1"}),
    ("turn:alice:pw@10.0.0.1:3478", {"urls": "turn:10.0.0.1:3478", "username": "alice", "credential": "pw"}),
    ("turns:a:b@h:5349?transport=tcp", {"urls": "turns:h:5349?transport=tcp", "username": "a", "credential": "b"}),
    ("turn:1700000000:alice:pw@h:3478", {"urls": "turn:h:3478", "username": "1700000000:alice", "credential": "pw"}),
    ("turn:a%40b:p%3Aw@h", {"urls": "turn:h", "username": "a@b", "credential": "p:w"}),
])
def test_parse_ice_server(text, server):
    assert parse_ice_server(text) == server


@pytest.mark.parametrize("text", ["", "stun", "stun:", "http://x", "stun://x:1", "turn:h:3478",
                                  "turn:@h", "turn:pw@h", "ftp:x", "stun:a b"])
def test_parse_ice_server_refuses(text):
    with pytest.raises(ValueError):
        parse_ice_server(text)


def test_cli_rejects_bad_ice_server(capsys, tmp_path):
    (tmp_path / "pages").mkdir()
    with pytest.raises(SystemExit):
        parse_args(["--root", str(tmp_path), "--ice-server", "http://nope"])
    assert "bad ICE server" in capsys.readouterr().err


def test_token_bucket_rate_burst_and_flood():
    b = TokenBucket(rate=10, burst=20, now=0.0, strike_fade=5, max_strikes=30)
    assert sum(b.take(0.0) for _ in range(25)) == 20  # burst
    assert b.strikes == 5 and not b.flooding
    assert b.take(0.1) and not b.take(0.1)  # 1 token per 0.1 s
    assert sum(b.take(1.1) for _ in range(20)) == 10  # refilled 10 over 1 s
    for _ in range(40):
        b.take(1.1)
    assert b.flooding
    b.take(20.0)  # strikes fade with time
    assert not b.flooding


def test_token_bucket_never_exceeds_burst():
    b = TokenBucket(rate=100, burst=5, now=0.0)
    assert sum(b.take(1000.0) for _ in range(10)) == 5


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                        ("localhost", True), ("0.0.0.0", False), ("::", False),
                                        ("192.168.1.5", False), ("example.org", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def _args(tmp_path, *argv):
    (tmp_path / "pages").mkdir(exist_ok=True)
    return parse_args(["--root", str(tmp_path), *argv])


def test_warns_on_public_bind_without_secret(tmp_path):
    site = StaticSite(tmp_path)
    warnings = startup_warnings(_args(tmp_path, "--host", "0.0.0.0"), site)
    assert any("without --secret" in w for w in warnings)
    assert any("npm ci" in w for w in warnings)  # tmp root has no node_modules
    assert not any("without --secret" in w for w in
                   startup_warnings(_args(tmp_path, "--host", "0.0.0.0", "--secret"), site))
    assert not any("without --secret" in w for w in startup_warnings(_args(tmp_path), site))


def test_lan_defaults_to_all_interfaces_and_three_ports(tmp_path):
    args = _args(tmp_path, "--lan", "--port", "9000")
    assert args.host == "0.0.0.0"
    lines = window_urls(_args(tmp_path, "--lan", "--host", "127.0.0.1"), [9000, 9001, 9002], ["todo"])
    assert "http://127.0.0.1:9000/todo?node=0" in lines[1]
    assert "http://127.0.0.1:9002/todo?node=2" in lines[1]


def test_default_urls_use_wraft_subdomains(tmp_path):
    lines = window_urls(_args(tmp_path), [8000], ["kv", "todo"])
    assert lines[0].split()[1:] == [f"http://wraft{i}.localhost:8000/" for i in range(3)]
    assert lines[2].split()[1:] == [f"http://wraft{i}.localhost:8000/todo" for i in range(3)]


def test_cli_refuses_non_repo_root(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--root", str(tmp_path / "nowhere")])
    assert "does not look like the WRaft repo" in capsys.readouterr().err


def test_windows_option_sets_urls_and_lan_ports(tmp_path):
    args = _args(tmp_path, "--windows", "5")
    lines = window_urls(args, [8000], ["todo"])
    assert lines[1].split()[1:] == [f"http://wraft{i}.localhost:8000/todo" for i in range(5)]
    assert "wraft5.localhost:8000" in more_windows_hint(args, [8000])
    lan = _args(tmp_path, "--lan", "--host", "127.0.0.1", "--windows", "7", "--port", "9000")
    assert "http://127.0.0.1:9006/todo?node=6" in window_urls(lan, list(range(9000, 9007)), ["todo"])[1]


@pytest.mark.parametrize("argv", [["--windows", "0"], ["--windows", "8"], ["--max-nodes", "0"],
                                  ["--join-timeout", "-1"], ["--lan", "--port", "65530", "--windows", "7"]])
def test_cli_refuses_out_of_range_options(tmp_path, capsys, argv):
    with pytest.raises(SystemExit):
        _args(tmp_path, *argv)
    assert capsys.readouterr().err
