"""`python -m signaling` as a real process: prints window URLs, serves pages by
Host, warns about a missing node_modules, --lan serves three origins."""

import asyncio
import json
import os
import re
import socket
import sys

import aiohttp
import pytest

from sig_helpers import REPO_ROOT, open_ws, recv_json

URL = re.compile(r"http://[^\s]+")


def free_port(count: int = 1) -> int:
    """A port p with p..p+count-1 all free on 127.0.0.1 (best effort)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            held = []
            for p in range(base, base + count):
                t = socket.socket()
                held.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in held:
                t.close()
    raise RuntimeError("no free port range")


async def start_cli(*argv):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling", *argv, cwd=str(REPO_ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            assert line, "server exited: " + (await proc.stderr.read()).decode()
            lines.append(line)
            if line.lstrip().startswith("todo"):
                return proc, lines
    except BaseException:
        proc.kill()
        await proc.wait()
        raise


async def stop(proc) -> str:
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
    return (await proc.stderr.read()).decode()


async def test_cli_prints_urls_and_serves_todo_by_host(site_root):
    import shutil
    shutil.rmtree(site_root / "node_modules")
    port = free_port()
    proc, lines = await start_cli("--port", str(port), "--root", str(site_root))
    try:
        todo = URL.findall(next(l for l in lines if l.lstrip().startswith("todo")))
        assert todo == [f"http://wraft{i}.localhost:{port}/todo" for i in range(3)]
        async with aiohttp.ClientSession() as s:
            # wraft1.localhost is loopback; connect by address and send the Host.
            async with s.get(f"http://127.0.0.1:{port}/todo",
                             headers={"Host": f"wraft1.localhost:{port}"}) as r:
                assert r.status == 200
                assert await r.text() == "<h1>todo</h1>"
            async with s.get(f"http://127.0.0.1:{port}/config.json") as r:
                assert await r.json() == {"ice_servers": [], "secret_required": False}
        ws = await open_ws(f"http://127.0.0.1:{port}")
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}
        await ws.close()
    finally:
        err = await stop(proc)
    assert "npm ci" in err  # node_modules was missing: told how to fix it


async def test_cli_lan_mode_serves_three_ports(site_root):
    port = free_port(3)
    proc, lines = await start_cli("--lan", "--host", "127.0.0.1", "--port", str(port),
                                  "--root", str(site_root), "--ice-server", "stun:10.0.0.1:3478")
    try:
        todo = URL.findall(next(l for l in lines if l.lstrip().startswith("todo")))
        assert todo == [f"http://127.0.0.1:{port + i}/todo?node={i}" for i in range(3)]
        async with aiohttp.ClientSession() as s:
            for url in todo:
                async with s.get(url) as r:
                    assert r.status == 200 and await r.text() == "<h1>todo</h1>"
            async with s.get(f"http://127.0.0.1:{port + 2}/config.json") as r:
                assert (await r.json())["ice_servers"] == [{"urls": "stun:10.0.0.1:3478"}]
        # one introducer behind all three ports
        a = await open_ws(f"http://127.0.0.1:{port}")
        b = await open_ws(f"http://127.0.0.1:{port + 1}")
        await a.send(json.dumps({"type": "join", "v": 1, "cluster": "lan", "node": "0"}))
        await b.send(json.dumps({"type": "join", "v": 1, "cluster": "lan", "node": "1"}))
        while (msg := await recv_json(a))["type"] != "presence" or msg["nodes"] != ["0", "1"]:
            pass
        await a.close()
        await b.close()
    finally:
        await stop(proc)


async def test_cli_port_in_use_is_a_clear_error(site_root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signaling", "--port", str(port), "--root", str(site_root),
            cwd=str(REPO_ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err.decode()
