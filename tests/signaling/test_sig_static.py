"""Static hosting: clean page paths, runtime URL layout, MIME types, cache
headers, only GET/HEAD, page bundles, and every traversal trick gets 404."""

import asyncio
import io
import json
import zipfile

import aiohttp
import pytest

from signaling.app import make_app
from signaling.static import DEV_CACHE, RUNTIME_CACHE
from sig_helpers import REPO_ROOT

IMMUTABLE = "public, max-age=31536000, immutable"


async def get(base, path, method="GET", **kw):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, base + path, allow_redirects=False, **kw) as r:
            return r.status, r.headers, await r.read()


async def raw_get(base: str, target: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """Send the request line byte for byte (no client normalisation)."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + target.encode("latin-1") + b" HTTP/1.1\r\nHost: " + host.encode("latin-1")
                 + b"\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize("path, body, ctype, cache", [
    ("/", b"<h1>landing</h1>", "text/html", DEV_CACHE),
    ("/todo", b"<h1>todo</h1>", "text/html", DEV_CACHE),
    ("/pages/app.css", b"body{}", "text/css", DEV_CACHE),
    ("/pages/img/logo.svg", b"<svg/>", "image/svg+xml", DEV_CACHE),
    ("/raft/__init__.py", b"# raft", "text/plain", DEV_CACHE),
    ("/raft/inside.py", b"# raft", "text/plain", DEV_CACHE),  # symlink that stays inside
    ("/components/status.py", b"# status", "text/plain", DEV_CACHE),
    ("/pyscript.toml", b'name = "wraft"\n', "application/toml", DEV_CACHE),
    # fixed runtime names revalidate (a new pin changes them); hashed chunks never change
    ("/pyscript/core.js", b"export {}", "text/javascript", DEV_CACHE),
    ("/pyscript/core-C9KDLldu.js", b"export {}", "text/javascript", RUNTIME_CACHE),
    ("/pyscript/core.css", b".py{}", "text/css", DEV_CACHE),
    ("/pyscript/micropython/micropython.mjs", b"export {}", "text/javascript", DEV_CACHE),
    ("/pyscript/micropython/micropython.wasm", b"\0asm", "application/wasm", DEV_CACHE),
    ("/pyscript/pyodide/pyodide.mjs", b"export {}", "text/javascript", DEV_CACHE),
    ("/pyscript/pyodide/pyodide.asm.wasm", b"\0asm", "application/wasm", DEV_CACHE),
    ("/pyscript/pyodide/python_stdlib.zip", b"PK", "application/zip", DEV_CACHE),
    ("/pyscript/pyodide/pyodide-lock.json", b"{}", "application/json", DEV_CACHE),
    ("/vendor/todomvc-app-css/index.css", b"body{}", "text/css", DEV_CACHE),
])
async def test_serves_file_with_mime_and_cache(base_url, path, body, ctype, cache):
    status, headers, data = await get(base_url, path)
    assert status == 200
    assert data == body
    assert headers["Content-Type"].split(";")[0] == ctype
    assert headers["Cache-Control"] == cache
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_cache_policies_are_the_documented_ones():
    assert RUNTIME_CACHE == IMMUTABLE
    assert DEV_CACHE == "no-cache"


async def test_head_has_headers_and_no_body(base_url):
    status, headers, data = await get(base_url, "/pyscript/micropython/micropython.wasm", "HEAD")
    assert status == 200 and data == b""
    assert headers["Content-Type"] == "application/wasm"
    assert headers["Content-Length"] == "4"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_only_get_and_head(base_url, method):
    status, headers, _ = await get(base_url, "/todo", method)
    assert status == 405
    assert "GET" in headers["Allow"]


async def test_page_with_trailing_slash_redirects_to_clean_path(base_url):
    status, headers, _ = await get(base_url, "/todo/?node=1")
    assert status == 301
    assert headers["Location"] == "/todo?node=1"


@pytest.mark.parametrize("path", ["/nope", "/index", "/todo.html", "/pages/missing.css",
                                  "/raft/", "/pyscript/", "/pyscript/micropython/",
                                  "/pages/.hidden.html", "/.hidden", "/node_modules/pyodide/pyodide.mjs"])
async def test_missing_or_unmapped_is_404(base_url, path):
    status, _, _ = await get(base_url, path)
    if path == "/index":
        # pages/index.html is the landing page at "/", and also reachable as /index.
        assert status == 200
    else:
        assert status == 404


@pytest.mark.parametrize("target", [
    "/../pyproject.toml",
    "/%2e%2e/pyproject.toml",
    "/%2E%2E/pyproject.toml",
    "/..%2fpyproject.toml",
    "/raft/../pyproject.toml",
    "/raft/..%2fpyproject.toml",
    "/raft/..%2Fpyproject.toml",
    "/raft/%2e%2e%2fpyproject.toml",
    "/raft/%2e%2e/pyproject.toml",
    "/raft/..%5cpyproject.toml",
    "/raft/..\\pyproject.toml",
    "/pages/..\\..\\pyproject.toml",
    "/raft/%00",
    "/raft/__init__.py%00.html",
    "/pyscript/../../pyproject.toml",
    "/pyscript/micropython/../../../../pyproject.toml",
    "/pages//etc/passwd",
    "//etc/passwd",
    "/pages/%2fetc%2fpasswd",
    "/raft/leak.py",               # symlink to a file outside
    "/evil",                       # page symlink to a file outside
    "/components/outdir/secret.txt",  # symlinked directory outside
    "/raft/%252e%252e/pyproject.toml",
    "/%2e%2e%2f%2e%2e%2fetc/passwd",
])
async def test_traversal_is_404(base_url, target):
    status, data = await raw_get(base_url, target)
    assert status == 404, data[:200]
    assert b"TOP SECRET" not in data and b"[project]" not in data and b"EVIL" not in data


async def test_raw_nul_in_request_line_never_serves(base_url):
    status, data = await raw_get(base_url, "/raft/__init__.py\x00")
    assert status in (400, 404)
    assert b"# raft" not in data


async def config_json(base):
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/config.json") as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
            return await r.json()


async def test_config_json_without_secret(make_server):
    base = await make_server(ice_servers=[{"urls": "stun:10.0.0.1:3478"}])
    assert await config_json(base) == {"v": 2, "access": "open", "turn": False,
                                       "ice_servers": [{"urls": "stun:10.0.0.1:3478"}]}


async def test_config_json_carries_no_credential(make_server):
    from signaling.turn import TurnMinter
    base = await make_server(access_secret="s" * 32, turn=TurnMinter("t0p", ["turn:10.0.0.1:3478"]),
                             ice_servers=[{"urls": "stun:10.0.0.1:3478"},
                                          {"urls": "turn:10.0.0.2", "username": "u", "credential": "pw"}])
    config = await config_json(base)
    assert config == {"v": 2, "access": "secret", "turn": True,
                      "ice_servers": [{"urls": "stun:10.0.0.1:3478"}]}
    assert "pw" not in json.dumps(config) and "s" * 32 not in json.dumps(config)


async def test_missing_node_modules_still_serves_the_rest(aiohttp_client, site_root):
    import shutil
    shutil.rmtree(site_root / "node_modules")
    app = make_app(site_root)
    client = await aiohttp_client(app)
    from signaling.app import SITE
    assert len(app[SITE].missing_runtime()) == 4
    assert (await client.get("/todo")).status == 200
    assert (await client.get("/pyscript/core.js")).status == 404


REAL_RUNTIME = [
    ("/pyscript/core.js", "text/javascript"),
    ("/pyscript/micropython/micropython.mjs", "text/javascript"),
    ("/pyscript/micropython/micropython.wasm", "application/wasm"),
    ("/pyscript/pyodide/pyodide.mjs", "text/javascript"),
    ("/pyscript/pyodide/pyodide.asm.mjs", "text/javascript"),
    ("/pyscript/pyodide/pyodide.asm.wasm", "application/wasm"),
    ("/pyscript/pyodide/python_stdlib.zip", "application/zip"),
    ("/pyscript/pyodide/pyodide-lock.json", "application/json"),
    ("/vendor/todomvc-app-css/index.css", "text/css"),
]


@pytest.mark.skipif(not (REPO_ROOT / "node_modules").is_dir(), reason="npm ci not run")
async def test_real_repo_runtime_layout(aiohttp_client):
    """The pinned npm runtime really sits where pages expect it."""
    client = await aiohttp_client(make_app(REPO_ROOT))
    for path, ctype in REAL_RUNTIME:
        r = await client.head(path)
        assert r.status == 200, path
        assert r.headers["Content-Type"].split(";")[0] == ctype, path
        assert r.headers["Cache-Control"] == "no-cache", path  # fixed names revalidate
        assert r.headers["ETag"], path
    chunks = [p.name for p in (REPO_ROOT / "node_modules/@pyscript/core/dist").glob("core-*.js")]
    assert chunks, "PyScript's content-hashed chunks"
    r = await client.head("/pyscript/" + chunks[0])
    assert r.headers["Cache-Control"] == IMMUTABLE


async def test_plain_http_get_on_ws_is_400_not_a_crash(base_url):
    status, _, _ = await get(base_url, "/ws")
    assert status == 400
    status, _, _ = await get(base_url, "/todo")
    assert status == 200


def write_bundle_config(root, page, urls, files=True):
    lines = ['[files]\n"/bundle/%s.zip" = "./*"\n' % page if files else "",
             "[wraft]\nbundle = [%s]\n" % ", ".join('"%s"' % u for u in urls)]
    (root / "pages" / (page + ".toml")).write_text("\n".join(lines))


async def test_bundle_holds_exactly_the_listed_files(make_server, site_root):
    (site_root / "raft" / "browser").mkdir()
    (site_root / "raft" / "browser" / "x.py").write_text("X = 1\n")
    write_bundle_config(site_root, "todo", ["/raft/__init__.py", "/raft/browser/x.py",
                                            "/components/status.py"])
    base = await make_server()
    status, headers, data = await get(base, "/bundle/todo.zip")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert headers["Cache-Control"] == DEV_CACHE and headers["ETag"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["components/status.py", "raft/__init__.py",
                                        "raft/browser/x.py"]
        assert z.read("raft/browser/x.py") == b"X = 1\n"
    # revalidation: unchanged -> 304; a listed file changes -> new archive and tag
    status, _, _ = await get(base, "/bundle/todo.zip", headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    (site_root / "raft" / "browser" / "x.py").write_text("X = 22\n")
    status, headers2, data = await get(base, "/bundle/todo.zip",
                                       headers={"If-None-Match": headers["ETag"]})
    assert status == 200 and headers2["ETag"] != headers["ETag"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("raft/browser/x.py") == b"X = 22\n"


@pytest.mark.parametrize("urls", [
    ["/raft/leak.py"],                      # symlink out of the tree
    ["/raft/../pyproject.toml"],            # traversal
    ["/pyproject.toml"],                    # not under raft/, components/ or pages/
    ["/pyscript/core.js"],                  # the runtime is never bundled
    ["/raft/__init__.py", "/raft/missing.py"],  # one bad entry spoils the list
    ["/components/outdir/secret.txt"],
])
async def test_bundle_refuses_a_bad_list(make_server, site_root, urls):
    write_bundle_config(site_root, "todo", urls)
    base = await make_server()
    status, _, data = await get(base, "/bundle/todo.zip")
    assert status == 404 and b"SECRET" not in data


async def test_bundle_of_a_page_without_a_list_or_with_a_bad_config_is_404(make_server, site_root):
    base = await make_server()
    assert (await get(base, "/bundle/todo.zip"))[0] == 404   # no pages/todo.toml
    (site_root / "pages" / "todo.toml").write_text("[wraft\nbundle = ")
    assert (await get(base, "/bundle/todo.zip"))[0] == 404   # not TOML
    (site_root / "pages" / "todo.toml").write_text("[wraft]\nbundle = 3\n")
    assert (await get(base, "/bundle/todo.zip"))[0] == 404   # not a list
    assert (await get(base, "/bundle/nope.zip"))[0] == 404
    assert (await get(base, "/bundle/../todo.zip"))[0] == 404
