"""Fixtures for the signaling tests: a throwaway repo root and a real
introducer on 127.0.0.1 (helpers are in sig_helpers.py)."""

from pathlib import Path

import pytest

from signaling.app import make_app

@pytest.fixture
def site_root(tmp_path: Path) -> Path:
    """A minimal repo root: pages, raft/, components/, pyscript.toml, a fake
    node_modules runtime, a secret outside it and symlinks pointing out."""
    root = tmp_path / "repo"
    files = {
        "pages/index.html": "<h1>landing</h1>",
        "pages/todo.html": "<h1>todo</h1>",
        "pages/app.css": "body{}",
        "pages/img/logo.svg": "<svg/>",
        "raft/__init__.py": "# raft",
        "components/status.py": "# status",
        "pyscript.toml": 'name = "wraft"\n',
        "pyproject.toml": "[project]\n",
        "pages/.hidden.html": "hidden",
        "node_modules/@pyscript/core/dist/core.js": "export {}",
        "node_modules/@pyscript/core/dist/core-C9KDLldu.js": "export {}",
        "node_modules/@pyscript/core/dist/core.css": ".py{}",
        "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs": "export {}",
        "node_modules/@micropython/micropython-webassembly-pyscript/micropython.wasm": "\0asm",
        "node_modules/pyodide/pyodide.mjs": "export {}",
        "node_modules/pyodide/pyodide.asm.wasm": "\0asm",
        "node_modules/pyodide/python_stdlib.zip": "PK",
        "node_modules/pyodide/pyodide-lock.json": "{}",
        "node_modules/todomvc-app-css/index.css": "body{}",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET")
    (outside / "evil.html").write_text("EVIL")
    (root / "raft" / "leak.py").symlink_to(outside / "secret.txt")
    (root / "pages" / "evil.html").symlink_to(outside / "evil.html")
    (root / "components" / "outdir").symlink_to(outside, target_is_directory=True)
    (root / "raft" / "inside.py").symlink_to(root / "raft" / "__init__.py")
    return root

@pytest.fixture
async def make_server(aiohttp_server, site_root):
    """Start a real introducer on 127.0.0.1; returns its http base URL."""

    async def start(**options):
        server = await aiohttp_server(make_app(site_root, **options))
        return f"http://127.0.0.1:{server.port}"

    return start

@pytest.fixture
async def base_url(make_server):
    return await make_server()
