"""What `wraft serve --pages DIR` serves: the framework's site (raft/,
components/, the pinned runtime, its own pages) with the author's folders
in front. DIR/<name>.html is at /<name>, any file of DIR at /pages/<file>
(an author's page hides a framework page of the same name), and
/pages/<name>.toml, unless DIR has that file, is made on request from the
page's imports and the Python files beside it (wraft/pyscript_config.py):
one archive, /bundle/<name>.zip (bytecode for MicroPython windows when the
page has <meta name="wraft-bundle">, as the starter does), so `import notes`
in the page loads DIR/notes.py."""

import json
import logging
import time
from pathlib import Path

from aiohttp import hdrs, web

from signaling.ratelimit import TokenBucket
from signaling.static import DEV_CACHE, PAGE_NAME, StaticSite, safe_join

from wraft.page_errors import explain
from wraft.pyscript_config import author_config

log = logging.getLogger("wraft.page")
ERROR_PATH = "/wraft/page-error"
MAX_REPORT = 16 * 1024  # bytes of one report


def printable(text):
    """No control characters from a page into the server's log."""
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in text)


class AuthorSite(StaticSite):
    def __init__(self, root, pages_dirs=()):
        super().__init__(root)
        self.author_dirs = [d for d in dict.fromkeys(Path(p).resolve() for p in pages_dirs)
                            if d != self.pages.resolve()]
        self.page_dirs = self.author_dirs + [self.pages]
        self.reports = TokenBucket(rate=1.0, burst=30, now=time.monotonic())  # a page's errors

    def describe(self):
        if not self.author_dirs:
            return str(self.root)
        return "%s with the pages of %s" % (self.root, ", ".join(map(str, self.author_dirs)))

    def page_file(self, name):
        for d in self.page_dirs:
            found = safe_join(d, name + ".html")
            if found:
                return found
        return None

    def pages_file(self, rel):
        for d in self.page_dirs:
            found = safe_join(d, rel)
            if found:
                return found
        return None

    def page_names(self):
        names = set()
        for d in self.page_dirs:
            names.update(p.stem for p in d.glob("*.html")
                         if p.stem != "index" and PAGE_NAME.fullmatch("/" + p.stem))
        return sorted(names)

    def authors_page(self, name):
        """The author's page /<name> (in one of the author's folders), or None."""
        found = self.page_file(name)
        if found and any(found.is_relative_to(d) for d in self.author_dirs):
            return found
        return None

    def generated(self, path):
        if not (path.startswith("/pages/") and path.endswith(".toml")):
            return None
        name = path[len("/pages/"):-len(".toml")]
        page = self.authors_page(name) if PAGE_NAME.fullmatch("/" + name) else None
        if page is None or (page.parent / (name + ".toml")).is_file():
            return None  # a file (the framework's, or the author's own) or nothing
        return web.Response(text=author_config(page, self.root), headers={
            hdrs.CONTENT_TYPE: "application/toml; charset=utf-8",
            hdrs.CACHE_CONTROL: DEV_CACHE, "X-Content-Type-Options": "nosniff"})

    # ---- errors in an author's page (pages/loader.js reports them) ---------
    def add_routes(self, router):
        router.add_post(ERROR_PATH, self.page_error)

    async def page_error(self, request):
        """{"path": "/myapp", "kind": "python" | "node", "text": ...} -> the
        message naming file and line (logged, and shown by the page)."""
        if not self.reports.take(time.monotonic()):
            raise web.HTTPTooManyRequests()
        body = await request.content.read(MAX_REPORT + 1)
        try:
            report = json.loads(body) if len(body) <= MAX_REPORT else None
            path, kind, text = report["path"], report["kind"], report["text"]
            assert isinstance(path, str) and kind in ("python", "node") and isinstance(text, str)
        except (ValueError, TypeError, KeyError, AssertionError):
            raise web.HTTPBadRequest(text="expected JSON {path, kind: python|node, text}")
        m = PAGE_NAME.fullmatch(path) if path != "/" else None
        page = self.authors_page(m.group(1)) if m else None
        if page is None:
            raise web.HTTPNotFound(text="not an author's page: %r" % path[:80])
        message = explain(page, kind, text, self.root)
        origin = request.headers.get(hdrs.HOST, "?")
        for line in message.splitlines():
            log.error("page %s (%s): %s", path, printable(origin[:80]), printable(line))
        return web.json_response({"message": message}, headers={hdrs.CACHE_CONTROL: "no-store"})
