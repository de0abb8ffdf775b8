"""What `wraft serve --pages DIR` serves: the framework's site (raft/,
components/, the pinned runtime, its own pages) with the author's folders
in front. DIR/<name>.html is at /<name>, any file of DIR at /pages/<file>
(an author's page hides a framework page of the same name), and
/pages/<name>.toml, unless DIR has that file, is made on request from the
page's imports and the Python files beside it (wraft/pyscript_config.py),
so `import notes` in the page loads DIR/notes.py as PyScript's [files] do."""

from pathlib import Path

from aiohttp import hdrs, web

from signaling.static import DEV_CACHE, PAGE_NAME, StaticSite, safe_join

from wraft.pyscript_config import author_config


class AuthorSite(StaticSite):
    def __init__(self, root, pages_dirs=()):
        super().__init__(root)
        self.author_dirs = [d for d in dict.fromkeys(Path(p).resolve() for p in pages_dirs)
                            if d != self.pages.resolve()]
        self.page_dirs = self.author_dirs + [self.pages]

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
