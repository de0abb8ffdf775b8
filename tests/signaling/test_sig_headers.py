"""Security headers on every response (pages, files, errors, /ws refusals,
malformed requests), no versions in Server, and malformed requests cost one
log line without a traceback."""

import asyncio
import logging

import aiohttp
import pytest

from signaling.headers import CSP, SECURITY_HEADERS
from test_sig_static import raw_get


@pytest.mark.parametrize("method, path, headers, status", [
    ("GET", "/", {}, 200),
    ("GET", "/todo", {}, 200),
    ("GET", "/pyscript/core.js", {}, 200),
    ("HEAD", "/raft/__init__.py", {}, 200),
    ("GET", "/config.json", {}, 200),
    ("GET", "/nope", {}, 404),
    ("POST", "/todo", {}, 405),
    ("GET", "/todo/", {}, 301),
    ("GET", "/ws", {}, 400),  # not an upgrade
    ("GET", "/ws", {"Origin": "http://evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}, 403),
    ("GET", "/todo", {"Host": "evil.example"}, 421),
])
async def test_every_response_has_the_security_headers(base_url, method, path, headers, status):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, base_url + path, headers=headers, allow_redirects=False) as r:
            assert r.status == status
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, name


def test_the_policy_says_what_the_issue_asks():
    assert "frame-ancestors 'none'" in CSP and "'wasm-unsafe-eval'" in CSP
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP
    assert "*" not in CSP and "http:" not in CSP and "'unsafe-inline'" not in CSP.split("style-src")[0]
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert SECURITY_HEADERS["Server"] == "wraft"


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",  # oversized header
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(500)) + b"\r\n",  # too many
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # oversized request line
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
])
async def test_malformed_requests_get_400_and_one_line_no_traceback(base_url, caplog, request_bytes):
    caplog.set_level(logging.INFO)
    port = int(base_url.rsplit(":", 1)[1])
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert data.startswith(b"HTTP/1.") and b" 400 " in data.split(b"\r\n")[0], data[:200]
        assert b"Server: wraft\r\n" in data and b"aiohttp" not in data and b"Python" not in data
    assert "Traceback" not in caplog.text
    lines = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(lines) == 1, caplog.text  # throttled: one line for the three
    status, _ = await raw_get(base_url, "/todo")  # and the server goes on
    assert status == 200
