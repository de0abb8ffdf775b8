"""Small pure pieces: ICE server parsing, the token bucket, CLI helpers."""

import argparse
import socket

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


def test_turn_secret_mints_for_bare_turn_servers(tmp_path):
    (tmp_path / "turn").write_text("s3cret\n")
    args = _args(tmp_path, "--turn-secret", "@" + str(tmp_path / "turn"), "--turn-ttl", "300",
                 "--ice-server", "stun:h:3478", "--ice-server", "turn:h:3478")
    assert args.ice_server == [{"urls": "stun:h:3478"}]
    assert args.turn.secret == "s3cret" and args.turn.urls == ["turn:h:3478"] and args.turn.ttl == 300


@pytest.mark.parametrize("argv, message", [
    (["--ice-server", "turn:h:3478"], "TURN needs USER:PASS@"),
    (["--turn-secret", "x", "--ice-server", "stun:h"], "needs at least one turn:"),
    (["--turn-secret", "@/nonexistent/file", "--ice-server", "turn:h"], "nonexistent"),
    (["--secret", "--secret-file", "f"], "pick one"),
    (["--allow-origin", "evil.example"], "bad origin"),
    (["--allow-origin", "https://a.example/path"], "bad origin"),
])
def test_cli_refuses_bad_security_options(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        _args(tmp_path, *argv)
    assert message in capsys.readouterr().err


def test_secret_file_option_is_checked(tmp_path, capsys):
    (tmp_path / "weak").write_text("hunter2")
    with pytest.raises(SystemExit):
        _args(tmp_path, "--secret-file", str(tmp_path / "weak"))
    assert "22-128 characters" in capsys.readouterr().err
    args = _args(tmp_path, "--secret-file", str(tmp_path / "made"))
    assert args.access_secret == (tmp_path / "made").read_text().strip()
    # a kept secret is not printed: the links say where it is instead
    assert args.access_secret not in "".join(window_urls(args, [8000], ["todo"]))


def test_generated_secret_rides_in_the_fragment_of_every_link(tmp_path):
    args = _args(tmp_path, "--secret")
    assert len(args.access_secret) == 32
    for line in window_urls(args, [8000], ["todo"]):
        for url in line.split()[1:]:
            path, _, fragment = url.partition("#")
            assert fragment == "access=" + args.access_secret and args.access_secret not in path
    lan = _args(tmp_path, "--secret", "--lan", "--host", "127.0.0.1", "--port", "9000")
    assert window_urls(lan, [9000, 9001, 9002], ["todo"])[1].split()[1].endswith(
        "/todo?node=0#access=" + lan.access_secret)


def test_served_names_and_socket_cap(tmp_path):
    from signaling.__main__ import max_sockets, server_names
    assert server_names(_args(tmp_path)) == []
    assert server_names(_args(tmp_path, "--server-name", "w.example.org")) == ["w.example.org"]
    assert server_names(_args(tmp_path, "--host", "0.0.0.0")) == [socket.gethostname()]
    assert max_sockets(_args(tmp_path), 300) == 236
    assert max_sockets(_args(tmp_path), 96) == 72
    assert max_sockets(_args(tmp_path), 1 << 20) == 10_000
    assert max_sockets(_args(tmp_path, "--max-sockets", "50"), 300) == 50


@pytest.mark.parametrize("host, parsed", [
    ("wraft0.localhost:8000", ("wraft0.localhost", 8000)), ("EXAMPLE.org", ("example.org", None)),
    ("[::1]:8000", ("::1", 8000)), ("[::1]", ("::1", None)), ("127.0.0.1:1", ("127.0.0.1", 1)),
    ("", None), ("a b", None), ("h:0", None), ("h:65536", None), ("h:x", None), ("a@b", None),
    ("h:1:2", None), ("[::1", None), ("[::1]x", None), ("h/x", None),
])
def test_split_host(host, parsed):
    from signaling.origins import split_host
    assert split_host(host) == parsed


def test_origin_rules():
    from signaling.origins import Origins
    o = Origins(["w.example.org"], ["https://app.example.org"])
    assert o.ws_origin_ok(None, "anything")  # not a browser page
    assert o.ws_origin_ok("http://wraft1.localhost:8000", "wraft1.localhost:8000")
    assert not o.ws_origin_ok("http://wraft1.localhost:8000", "wraft2.localhost:8000")
    assert o.ws_origin_ok("https://w.example.org", "w.example.org")  # behind a TLS proxy
    assert o.ws_origin_ok("https://w.example.org", "w.example.org:443")
    assert not o.ws_origin_ok("https://w.example.org:8443", "w.example.org")
    assert not o.ws_origin_ok("http://evil.example", "evil.example")  # not a name of ours
    assert o.ws_origin_ok("https://app.example.org", "127.0.0.1:8000")
    assert not o.ws_origin_ok("null", "127.0.0.1:8000")
    assert not o.ws_origin_ok("http://127.0.0.1:8000/", "127.0.0.1:8000")
    assert o.host_ok("192.168.7.9:8001") and o.host_ok("[fe80::1]:8000")  # no DNS, no rebinding
    assert not o.host_ok("192.168.7.9.nip.io")
    wild = Origins(["*.example.org"])
    assert wild.host_ok("wraft1.example.org") and wild.host_ok("a.b.example.org:8443")
    assert not wild.host_ok("example.org") and not wild.host_ok("evilexample.org")
    assert not wild.host_ok("example.org.evil.net")


def test_log_throttle_one_line_per_interval():
    import logging
    lines = []

    class Sink(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("test.throttle")
    logger.addHandler(Sink())
    logger.setLevel(logging.INFO)
    now = [0.0]
    from signaling.ratelimit import LogThrottle
    note = LogThrottle(logger, interval=10, clock=lambda: now[0])
    for i in range(1000):
        note(logging.INFO, "a", "bad %d", i)
    note(logging.INFO, "b", "other")
    now[0] = 11
    note(logging.INFO, "a", "bad again")
    assert lines == ["bad 0", "other", "bad again (999 more like this in the last 11 s)"]


def test_address_keys():
    from signaling.addresses import address_key
    assert address_key("10.1.2.3") == "10.1.2.3"
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key(None) == "None"


def test_address_book_counts_and_forgets():
    from signaling.addresses import AddressBook
    book = AddressBook(max_sockets=2, max_clusters=1, rate=1, burst=3)
    assert book.open_socket("a", 0) is None and book.open_socket("a", 0) is None
    assert book.open_socket("a", 0) == "sockets"
    assert book.enter_cluster("a", "x") and book.enter_cluster("a", "x") and not book.enter_cluster("a", "y")
    assert book.may_join("a", 0) and not book.may_join("a", 0)  # 3 tokens: 2 sockets + 1 join
    book.leave_cluster("a", "x")
    book.leave_cluster("a", "x")
    assert book.enter_cluster("a", "y")
    book.leave_cluster("a", "y")
    book.close_socket("a")
    book.close_socket("a")
    book.prune(1.0)
    assert "a" in book.addresses  # its bucket is still refilling
    book.prune(10.0)
    assert "a" not in book.addresses


def test_client_address_behind_trusted_proxies():
    from signaling.addresses import client_address
    trusted = frozenset({"127.0.0.1", "10.0.0.2"})
    assert client_address("127.0.0.1", "203.0.113.7", trusted) == ("203.0.113.7", True)
    # hops before the last untrusted one are the client's to make up
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7", trusted) == ("203.0.113.7", True)
    assert client_address("127.0.0.1", "203.0.113.7, 10.0.0.2", trusted) == ("203.0.113.7", True)
    assert client_address("127.0.0.1", None, trusted) == ("127.0.0.1", True)
    assert client_address("127.0.0.1", " , ", trusted) == ("127.0.0.1", True)
    assert client_address("192.0.2.1", "203.0.113.7", trusted) == ("192.0.2.1", False)
    assert client_address("::ffff:127.0.0.1", "203.0.113.7", trusted) == ("203.0.113.7", True)
    assert client_address("2001:DB8::1", None, frozenset()) == ("2001:db8::1", False)


def test_cli_refuses_a_trusted_proxy_that_is_no_address(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _args(tmp_path, "--trusted-proxy", "caddy.local")
    assert "does not appear to be an IPv4 or IPv6 address" in capsys.readouterr().err
