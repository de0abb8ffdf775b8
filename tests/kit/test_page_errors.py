"""An author's page that goes wrong says where, in the page and in the
server's log (wraft/page_errors.py, the /wraft/page-error route of
wraft/site.py, the reporter in pages/loader.js): a Python error, an error in
a module beside the page, a missing module, a bad <raft-node> attribute.

    scripts/in-netns .venv/bin/pytest tests/kit/test_page_errors.py -q
"""

import json
import re
import textwrap
from pathlib import Path

import pytest

from wraft import framework
from wraft.page_errors import explain
from wraft.server import Server
from wraft.site import AuthorSite
from wraft.starter import write_starter

GOOD_IMPORT = "from notes import Notes  # notes.py, beside this page"


@pytest.fixture
def pages(tmp_path):
    """The starter, and four broken copies of its page."""
    d = tmp_path / "pages"
    write_starter(d)
    good = (d / "app.html").read_text()  # a folder named "pages" gets /app
    assert GOOD_IMPORT in good and 'size="3"' in good

    def variant(name, old, new):
        # its own config and bundle: MicroPython windows run its modules from bytecode
        text = good.replace("/pages/app.toml", "/pages/%s.toml" % name).replace(
            '<meta name="wraft-bundle" content="app">', '<meta name="wraft-bundle" content="%s">' % name)
        assert '<meta name="wraft-bundle" content="%s">' % name in text
        text = text.replace(old, new, 1)
        assert text != good
        (d / (name + ".html")).write_text(text)
    variant("pyerr", "app = start(Notes, on_change=render)",
            "app = start(Notes, on_change=render)\nprint(undefined_name)")
    variant("missing", GOOD_IMPORT, "from notez import Notes")
    variant("moderr", GOOD_IMPORT, "from broken import Notes")
    variant("badattr", '<raft-node size="3"', '<raft-node size="nine"')
    (d / "broken.py").write_text("class Notes:\n    pass\n\nx = 1 / 0\n")
    (d / "lib").mkdir()
    (d / "lib" / "notez.py").write_text("")  # in a folder without __init__.py
    return d


def line_of(path, needle):
    return next(i for i, s in enumerate(Path(path).read_text().splitlines(), 1) if needle in s)


def test_tracebacks_are_mapped_to_the_page_and_module_lines(pages):
    root = framework.root()
    pyerr = pages / "pyerr.html"
    n = line_of(pyerr, "print(undefined_name)")
    start = line_of(pyerr, '<script type="mpy"') + 1  # the script's line 1
    mpy = ('Traceback (most recent call last):\n  File "<stdin>", line %d, in <module>\n'
           "NameError: name 'undefined_name' isn't defined\n" % (n - start + 1))
    assert explain(pyerr, "python", mpy, root) == (
        "%s, line %d: NameError: name 'undefined_name' isn't defined\n    print(undefined_name)"
        % (pyerr, n))
    # Pyodide: the page is <exec>, modules under /home/pyodide, its own frames left out
    moderr = pages / "moderr.html"
    m = line_of(moderr, "from broken import")
    pyodide = textwrap.dedent('''\
        Traceback (most recent call last):
          File "/lib/python313.zip/_pyodide/_base.py", line 597, in eval_code_async
          File "<exec>", line %d, in <module>
          File "/home/pyodide/broken.py", line 4, in <module>
        ZeroDivisionError: division by zero''' % (m - start + 1))
    assert explain(moderr, "python", pyodide, root) == (
        "%s, line 4: ZeroDivisionError: division by zero\n    x = 1 / 0\n"
        "  traceback, innermost first: %s, line %d" % (pages / "broken.py", moderr, m))
    missing = pages / "missing.html"
    k = line_of(missing, "from notez import")
    text = explain(missing, "python", 'File "<stdin>", line %d\nImportError: no module named '
                   "'notez'" % (k - start + 1), root)
    assert text.splitlines() == [
        "%s, line %d: ImportError: no module named 'notez'" % (missing, k),
        "    from notez import Notes",
        "  no notez.py (or notez/__init__.py) beside the page in %s; lib/notez.py is there but "
        "not importable: a folder needs an __init__.py (its modules: broken.py, notes.py)" % pages]
    badattr = pages / "badattr.html"
    assert explain(badattr, "node", "<raft-node size='nine'>: need a cluster size 1..7", root) == (
        "%s, line %d: <raft-node size='nine'>: need a cluster size 1..7\n"
        '    <raft-node size="nine" introducer="/ws"></raft-node>'
        % (badattr, line_of(badattr, "<raft-node")))
    # a frame naming a file outside what is served shows no line of it
    sneaky = 'File "../../../etc/passwd", line 1\nFile "/etc/passwd", line 1\nOSError: x'
    assert explain(pyerr, "python", sneaky, root) == "%s: OSError: x" % pyerr


async def test_the_report_route_answers_only_for_authors_pages(pages, aiohttp_client):
    from signaling.app import make_app
    client = await aiohttp_client(make_app(site=AuthorSite(framework.root(), [pages])))
    ok = await client.post("/wraft/page-error", data=json.dumps(
        {"path": "/badattr", "kind": "node", "text": "<raft-node size='nine'>: bad\x1b[2J"}))
    assert ok.status == 200 and "badattr.html, line" in (await ok.json())["message"]
    for body, status in [({"path": "/counter", "kind": "node", "text": "x"}, 404),  # the framework's
                         ({"path": "/nowhere", "kind": "node", "text": "x"}, 404),
                         ({"path": "/pyerr", "kind": "shell", "text": "x"}, 400),
                         ({"path": "/pyerr"}, 400)]:
        r = await client.post("/wraft/page-error", data=json.dumps(body))
        assert r.status == status, body
    r = await client.post("/wraft/page-error", data="x" * 20000)
    assert r.status == 400
    statuses = [(await client.post("/wraft/page-error", data="{}")).status for _ in range(40)]
    assert statuses.count(429) > 0  # a page in a loop cannot flood the log


@pytest.mark.browser
def test_a_broken_page_says_where_in_the_page_and_in_the_server_log(pages, tmp_path, browser,
                                                                    wraft_network):
    srv = Server(tmp_path, pages=[pages], prefix=wraft_network.prefix).start()
    try:
        expect = {
            "pyerr": ("pyerr.html, line %d: NameError: name 'undefined_name' isn't defined"
                      % line_of(pages / "pyerr.html", "print(undefined_name)")),
            "missing": ("missing.html, line %d: ImportError: no module named 'notez'"
                        % line_of(pages / "missing.html", "from notez")),
            "moderr": "broken.py, line 4: ZeroDivisionError: divide by zero",
            "badattr": ("badattr.html, line %d: <raft-node size='nine'>: need a cluster size 1..7"
                        % line_of(pages / "badattr.html", "<raft-node")),
        }
        ctx = browser.new_context()
        for name, headline in expect.items():
            page = ctx.new_page()
            bundles = []
            page.on("response", lambda r: "/bundle/" in r.url and bundles.append(
                (r.url.split("/bundle/")[1], r.headers.get("x-wraft-bundle"))))
            page.goto(srv.url("/" + name))
            box = page.wait_for_selector(".wraft-error[role=alert]", timeout=30_000)
            assert headline in box.inner_text(), (name, box.inner_text())
            assert bundles == [(name + ".mpy.zip", "mpy")], bundles  # broken.py ran as .mpy
            page.close()
        ctx.close()
        log = srv.log(tail=20000)
        for name, headline in expect.items():
            assert re.search(r"ERROR wraft\.page: page /%s \(wraft0\.localhost:\d+\): .*%s"
                             % (name, re.escape(headline)), log), (name, log[-3000:])
        assert "\x1b" not in log
    finally:
        srv.stop()
