"""Safe static hosting: the pages at clean paths, the repo's browser code, and the
pinned offline PyScript runtime from node_modules (URL layout in README/DESIGN)."""

import asyncio
import hashlib
import io
import logging
import mimetypes
import re
import threading
import tomllib
import zipfile
from pathlib import Path

from aiohttp import hdrs, web

from .mpy import CompileError, Compiler, LogOnce

log = logging.getLogger("signaling.static")

RUNTIME_CACHE = "public, max-age=31536000, immutable"  # content-hashed names only
DEV_CACHE = "no-cache"  # pages, raft/, components/ change while developing
# The runtime's fixed names (core.js, micropython.wasm, ...) change content when
# package.json's pins move: revalidate them (ETag), never cache them for good.
# Bundler chunks are named after their content (core-C9KDLldu.js): immutable.
HASHED_NAME = re.compile(r".+-[A-Za-z0-9_]{8}\.(js|css)(\.map)?")

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
# /bundle/<page>.zip: the files a page's config lists under [wraft] bundle, as
# one archive (PyScript's [files] unpacks it with "./*"): one request, not 30.
# /bundle/<page>.mpy.zip: the same for MicroPython windows, each .py compiled to
# .mpy (signaling/mpy.py), or the .py archive when that cannot be done. Its
# config, /pages/<page>.mpy.toml, is the page's own with that archive named
# instead (pages/loader.js points MicroPython windows at it).
BUNDLE = re.compile(r"/bundle/([A-Za-z0-9_-]+)(\.mpy)?\.zip")
MPY_CONFIG = re.compile(r"/pages/([A-Za-z0-9_-]+)\.mpy\.toml")
PAGE_NAME_SLASH = re.compile(r"/([A-Za-z0-9_-]+)/")
# Encoded separators and NUL in the raw path: never legitimate here, refuse outright.
RAW_FORBIDDEN = re.compile(r"%(2f|5c|00)", re.IGNORECASE)

BUNDLE_FROM = ("/raft/", "/components/", "/pages/")  # what a bundle may hold

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
        ]
        self.single_files = {"/pyscript.toml": (self.root, "pyscript.toml")}
        self._bundles = {}  # (page, variant) -> (file stamps, zip bytes, etag)
        self.mpy = Compiler(nm / "@micropython" / "micropython-webassembly-pyscript")
        self.mpy_warning = LogOnce()
        self._build_lock = threading.Lock()

    def describe(self) -> str:
        return str(self.root)

    def page_file(self, name: str) -> Path | None:
        """The page served at /<name>."""
        return safe_join(self.pages, name + ".html")

    def pages_file(self, rel: str) -> Path | None:
        """The file served at /pages/<rel>."""
        return safe_join(self.pages, rel)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """More routes, before the catch-all of static files (none by default)."""

    def generated(self, path: str) -> web.Response | None:
        """A response made here rather than read from a file (none by default)."""
        return None

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
            found = self.page_file("index")
            return (found, DEV_CACHE) if found else None
        if path in self.single_files:
            base, name = self.single_files[path]
            found = safe_join(base, name)
            return (found, DEV_CACHE) if found else None
        m = PAGE_NAME.fullmatch(path)
        if m:
            found = self.page_file(m.group(1))
            return (found, DEV_CACHE) if found else None
        if path.startswith("/pages/"):
            found = self.pages_file(path[len("/pages/"):])
            return (found, DEV_CACHE) if found else None
        for prefix, base, cache in self.mounts:
            if path.startswith(prefix):
                found = safe_join(base, path[len(prefix):])
                if found and cache == RUNTIME_CACHE and not HASHED_NAME.fullmatch(found.name):
                    cache = DEV_CACHE
                return (found, cache) if found else None
        return None

    def bundle_files(self, page: str) -> list[tuple[str, Path]] | None:
        """[(name in the archive, file)] that /pages/<page>.toml (a file or
        made here) lists under [wraft] bundle (URL paths this site serves from
        raft/, components/ or pages/), or None when the page has no such list
        or a bad one. raft/x.py is raft/x.py in the archive; a file of the
        page's folder, /pages/notes.py, is notes.py (where [files] would put
        it: `import notes` finds it)."""
        text = self.config_text(page)
        if text is None:
            return None
        try:
            listed = tomllib.loads(text).get("wraft", {}).get("bundle")
        except (tomllib.TOMLDecodeError, AttributeError):
            return None
        if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
            return None
        files = []
        for url in listed:
            hit = self.locate(url)
            if hit is None or hit[1] != DEV_CACHE or not url.startswith(BUNDLE_FROM):
                return None  # a bad list serves nothing rather than part of it
            name = url[len("/pages/"):] if url.startswith("/pages/") else url.lstrip("/")
            files.append((name, hit[0]))
        return files

    def bundle(self, page: str) -> tuple[bytes, str] | None:
        """(zip bytes, etag) of the page's bundle, or None when it has none.
        Rebuilt when the config or a listed file changes."""
        files = self.bundle_files(page)
        if files is None:
            return None
        return self._archive(page, "py", files, lambda name, data: (name, data))

    def compiled_bundle(self, page: str) -> tuple[bytes, str, str] | None:
        """(zip bytes, etag, "mpy" or "py") of the bundle for MicroPython
        windows: every .py of the page's bundle as .mpy (nothing else: the
        runtime would import a .py beside it first), or the .py bundle when
        mpy-cross is missing, fails or emits what the runtime cannot load
        (the reason is logged once). Blocks while compiling: call it off the
        event loop."""
        files = self.bundle_files(page)
        if files is None:
            return None
        problem = self.mpy.problem
        if problem is None:
            def compiled(name, data):
                if not name.endswith(".py"):
                    return name, data
                return name[:-3] + ".mpy", self.mpy.compile(data, name)
            try:
                with self._build_lock:
                    return self._archive(page, "mpy", files, compiled) + ("mpy",)
            except (CompileError, OSError) as exc:
                problem = "cannot compile: %s" % exc
        self.mpy_warning("/bundle/%s.mpy.zip serves the .py bundle: %s" % (page, problem))
        built = self.bundle(page)
        return None if built is None else built + ("py",)

    def _archive(self, page, variant, files, convert):
        stamp = tuple((name, f.stat().st_mtime_ns, f.stat().st_size) for name, f in files)
        if variant == "mpy":
            stamp += (self.mpy.ident,)
        cached = self._bundles.get((page, variant))
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for name, f in files:
                name, data = convert(name, f.read_bytes())
                z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
        data = out.getvalue()
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]
        self._bundles[(page, variant)] = (stamp, data, etag)
        return data, etag

    def warm_up(self) -> None:
        """Compile every page's MicroPython bundle in a background thread, so
        the first window does not wait for mpy-cross."""
        names = [n for n in ["index"] + self.page_names() if self.bundle_files(n)]

        def run():
            for name in names:
                try:
                    self.compiled_bundle(name)
                except Exception:  # noqa: BLE001 -- a request builds it again and says why
                    pass
        if names:
            threading.Thread(target=run, name="wraft-mpy-warm-up", daemon=True).start()

    def config_text(self, page: str) -> str | None:
        """The text served at /pages/<page>.toml (a file or made here)."""
        made = self.generated("/pages/%s.toml" % page)
        if made is not None:
            return made.text
        found = self.pages_file(page + ".toml")
        try:
            return found.read_text() if found else None
        except (OSError, UnicodeDecodeError):
            return None

    def mpy_config(self, page: str) -> str | None:
        """/pages/<page>.mpy.toml: the page's config with /bundle/<page>.zip
        replaced by /bundle/<page>.mpy.zip in [files], else the config as it
        is (no bundle, or not a plain rewrite: the .py files work there too)."""
        text = self.config_text(page)
        if text is None:
            return None
        key, new_key = "/bundle/%s.zip" % page, "/bundle/%s.mpy.zip" % page
        try:
            before = tomllib.loads(text)
            files = before.get("files")
            if not isinstance(files, dict) or key not in files or text.count('"%s"' % key) != 1:
                return text
            changed = text.replace('"%s"' % key, '"%s"' % new_key)
            after = tomllib.loads(changed)
        except (tomllib.TOMLDecodeError, AttributeError):
            return text
        want = dict(before, files={(new_key if k == key else k): v for k, v in files.items()})
        return changed if after == want else text

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if RAW_FORBIDDEN.search(request.raw_path):
            raise web.HTTPNotFound()
        m = PAGE_NAME_SLASH.fullmatch(path)
        if m and self.page_file(m.group(1)):
            # /todo/ would resolve ./pyscript/ under /todo/: send it to /todo.
            query = request.rel_url.raw_query_string
            raise web.HTTPMovedPermanently("/" + m.group(1) + ("?" + query if query else ""))
        m = BUNDLE.fullmatch(path)
        if m:
            return await self.serve_bundle(request, m.group(1), compiled=bool(m.group(2)))
        m = MPY_CONFIG.fullmatch(path)
        if m and self.pages_file(path[len("/pages/"):]) is None:
            try:
                text = self.mpy_config(m.group(1))
            except Exception:  # noqa: BLE001 -- say why, and serve the page's own config
                log.exception("/pages/%s.mpy.toml: serving /pages/%s.toml as it is",
                              m.group(1), m.group(1))
                text = self.config_text(m.group(1))
            if text is None:
                raise web.HTTPNotFound()
            return web.Response(text=text, headers={
                hdrs.CONTENT_TYPE: "application/toml; charset=utf-8",
                hdrs.CACHE_CONTROL: DEV_CACHE, "X-Content-Type-Options": "nosniff"})
        made = self.generated(path)
        if made is not None:
            return made
        hit = self.locate(path)
        if hit is None:
            raise web.HTTPNotFound()
        file, cache = hit
        return web.FileResponse(file, headers={
            hdrs.CONTENT_TYPE: content_type(file),
            hdrs.CACHE_CONTROL: cache,
        })

    async def serve_bundle(self, request: web.Request, page: str, compiled: bool = False) -> web.Response:
        if compiled:
            built = await asyncio.get_running_loop().run_in_executor(None, self.compiled_bundle, page)
        else:
            built = self.bundle(page)
            built = built and built + ("py",)
        if built is None:
            raise web.HTTPNotFound()
        data, etag, variant = built
        headers = {hdrs.CACHE_CONTROL: DEV_CACHE, hdrs.ETAG: etag, "X-Content-Type-Options": "nosniff",
                   "X-Wraft-Bundle": variant}  # what it holds: .mpy or .py files
        if etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
            return web.Response(status=304, headers=headers)
        headers[hdrs.CONTENT_TYPE] = "application/zip"
        return web.Response(body=data, headers=headers)
