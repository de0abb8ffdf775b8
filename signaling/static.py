"""Safe static hosting: the pages at clean paths, the repo's browser code, and the
pinned offline PyScript runtime from node_modules (URL layout in README/DESIGN)."""

import mimetypes
import re
from pathlib import Path

from aiohttp import hdrs, web

RUNTIME_CACHE = "public, max-age=31536000, immutable"  # versioned by package.json pins
DEV_CACHE = "no-cache"  # pages, raft/, components/ change while developing

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".map": "application/json",
    ".toml": "application/toml; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
}

PAGE_NAME = re.compile(r"/([A-Za-z0-9_-]+)")
PAGE_NAME_SLASH = re.compile(r"/([A-Za-z0-9_-]+)/")
# Encoded separators and NUL in the raw path: never legitimate here, refuse outright.
RAW_FORBIDDEN = re.compile(r"%(2f|5c|00)", re.IGNORECASE)

NPM_HINT = "run `npm ci` in {root} to install the offline PyScript runtime"


def content_type(path: Path) -> str:
    ctype = CONTENT_TYPES.get(path.suffix.lower())
    if ctype is None:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return ctype


def safe_join(base: Path, rel: str) -> Path | None:
    """The regular file `rel` under `base`, or None. Refuses empty, '.', '..' and
    dot-file segments, backslashes and NUL, and anything whose real path (after
    symlinks) lies outside `base`."""
    if "\\" in rel or "\x00" in rel:
        return None
    parts = rel.split("/")
    if any(not p or p.startswith(".") for p in parts):
        return None
    try:
        real_base = base.resolve(strict=True)
        real = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, symlink loop, bad name
        return None
    if not real.is_relative_to(real_base) or not real.is_file():
        return None
    return real


class StaticSite:
    """Maps URL paths to files under the repo root."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        nm = self.root / "node_modules"
        self.pages = self.root / "pages"
        # Longest prefix first: /pyscript/micropython/ before /pyscript/.
        self.mounts = [
            ("/pyscript/micropython/", nm / "@micropython" / "micropython-webassembly-pyscript", RUNTIME_CACHE),
            ("/pyscript/pyodide/", nm / "pyodide", RUNTIME_CACHE),
            ("/pyscript/", nm / "@pyscript" / "core" / "dist", RUNTIME_CACHE),
            ("/vendor/todomvc-app-css/", nm / "todomvc-app-css", RUNTIME_CACHE),
            ("/raft/", self.root / "raft", DEV_CACHE),
            ("/components/", self.root / "components", DEV_CACHE),
            ("/pages/", self.pages, DEV_CACHE),
        ]
        self.single_files = {"/pyscript.toml": (self.root, "pyscript.toml")}

    def missing_runtime(self) -> list[Path]:
        """Runtime folders (from npm) that are absent."""
        return [d for _, d, cache in self.mounts if cache == RUNTIME_CACHE and not d.is_dir()]

    def page_names(self) -> list[str]:
        """App pages (pages/<name>.html, index excluded), for printing URLs."""
        if not self.pages.is_dir():
            return []
        return sorted(p.stem for p in self.pages.glob("*.html")
                      if p.stem != "index" and PAGE_NAME.fullmatch("/" + p.stem))

    def locate(self, path: str) -> tuple[Path, str] | None:
        """(file, cache-control) for a decoded URL path, or None."""
        if path == "/":
            found = safe_join(self.pages, "index.html")
            return (found, DEV_CACHE) if found else None
        if path in self.single_files:
            base, name = self.single_files[path]
            found = safe_join(base, name)
            return (found, DEV_CACHE) if found else None
        m = PAGE_NAME.fullmatch(path)
        if m:
            found = safe_join(self.pages, m.group(1) + ".html")
            return (found, DEV_CACHE) if found else None
        for prefix, base, cache in self.mounts:
            if path.startswith(prefix):
                found = safe_join(base, path[len(prefix):])
                return (found, cache) if found else None
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if RAW_FORBIDDEN.search(request.raw_path):
            raise web.HTTPNotFound()
        m = PAGE_NAME_SLASH.fullmatch(path)
        if m and safe_join(self.pages, m.group(1) + ".html"):
            # /todo/ would resolve ./pyscript/ under /todo/: send it to /todo.
            query = request.rel_url.raw_query_string
            raise web.HTTPMovedPermanently("/" + m.group(1) + ("?" + query if query else ""))
        hit = self.locate(path)
        if hit is None:
            raise web.HTTPNotFound()
        file, cache = hit
        return web.FileResponse(file, headers={
            hdrs.CONTENT_TYPE: content_type(file),
            hdrs.CACHE_CONTROL: cache,
        })
