"""`wraft new DIR`: a starter app in DIR -- one page with <raft-node> and
<raft-status>, its replicated state (a ten-line class in notes.py, beside
the page), and a Playwright test of it with the wraft pytest plugin."""

import re
from pathlib import Path

PAGE = '''<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <title>{name}: shared notes</title>
  <link rel="stylesheet" href="/pyscript/core.css">
  <meta name="wraft-bundle" content="{name}"><!-- its Python as bytecode for MicroPython -->
  <script type="module" src="/pages/loader.js"></script>
  <script type="module" src="/pyscript/core.js" offline></script>
</head>
<body>
  <h1>Shared notes</h1>
  <!-- This window's Raft node: a cluster of 3 windows, introduced by the server's /ws. -->
  <raft-node size="3" introducer="/ws"></raft-node>
  <!-- Who leads, each window's log, commit and liveness (raft/browser/APP.md). -->
  <raft-status></raft-status>
  <form id="add">
    <input id="text" aria-label="Note" placeholder="Write a note" autocomplete="off" autofocus data-raft-write disabled>
    <button data-raft-write disabled>Add</button>
  </form>
  <ul id="notes"></ul>
  <!-- /pages/{name}.toml: made by `wraft serve` from the imports below and notes.py -->
  <script type="mpy" config="/pages/{name}.toml">
import asyncio

from pyscript import document, when
from raft.browser.app import start

from notes import Notes  # notes.py, beside this page


def render(notes):
    ul = document.getElementById("notes")
    ul.replaceChildren()
    for text in notes.items:
        li = document.createElement("li")
        li.textContent = text
        ul.append(li)


app = start(Notes, on_change=render)


async def save(text, box):
    try:
        await app.propose(text)  # returns once committed and applied here
    except Exception as e:  # raft.runtime.contract.ProposalError: no leader, ...
        box.value = text  # nothing lost: the text is back for another try
        print("not saved:", e)


@when("submit", "#add")
def add(event):
    event.preventDefault()  # synchronous: an async handler runs after the form is sent
    box = document.getElementById("text")
    text = box.value.strip()
    box.value = ""
    if text:
        asyncio.create_task(save(text, box))
  </script>
</body>
</html>
'''

STATE = '''class Notes:
    """The replicated state: apply() runs in every window, in log order."""
    def __init__(self): self.items = []
    def apply(self, text):
        self.items.append(text)
        return len(self.items)  # what propose() returns in the proposing window
    def snapshot(self): return list(self.items)
    def restore(self, data): self.items = list(data)
'''

TEST = '''"""Playwright checks of /{name} with the wraft pytest plugin: three windows,
each its own origin, in headless Chromium (run `pytest` in this folder)."""


def test_a_note_written_in_one_window_shows_in_every_window(wraft_cluster):
    cluster = wraft_cluster("/{name}", size=3)  # windows 0, 1, 2; one Raft node each
    leader = cluster.leader()                   # waits for the one leader all follow
    writer = (leader + 1) % 3                   # a follower: it forwards to the leader
    page = cluster.pages[writer]
    page.evaluate("window.before = 1")          # gone if the form reloaded the page
    page.fill("#text", "hello from window %d" % writer)
    page.press("#text", "Enter")
    for i in range(3):
        cluster.pages[i].wait_for_selector("#notes li:text('hello from window %d')" % writer)
    assert cluster.converged() == ["hello from window %d" % writer]
    assert page.evaluate("window.before") == 1 and page.input_value("#text") == ""


def test_a_closed_window_catches_up_when_it_comes_back(wraft_cluster):
    cluster = wraft_cluster("/{name}", size=3)
    leader = cluster.leader()
    away = (leader + 2) % 3
    cluster.close(away)
    assert cluster.propose(leader, "while you were away") == {{"ok": 1}}
    cluster.reopen(away)  # its log is in its own localStorage
    cluster.wait_committed(cluster.commit(leader))
    assert cluster.converged() == ["while you were away"]
'''

PYTEST_INI = '''[pytest]
# the wraft plugin serves this folder's pages (wraft/testing.py)
wraft_pages = .
'''

NAME = re.compile(r"[A-Za-z0-9_-]+")


def page_name(folder):
    """The page's name: the folder's, where it is a usable URL path."""
    name = Path(folder).resolve().name
    return name if NAME.fullmatch(name) and name not in ("index", "pages") else "app"


def write_starter(folder):
    """Write the starter into `folder` (made if missing); refuses to replace
    any file. Returns the paths written."""
    folder = Path(folder)
    name = page_name(folder)
    files = {folder / (name + ".html"): PAGE.format(name=name),
             folder / "notes.py": STATE,
             folder / ("test_%s.py" % name.replace("-", "_")): TEST.format(name=name),
             folder / "pytest.ini": PYTEST_INI}
    taken = [str(p) for p in files if p.exists()]
    if taken:
        raise FileExistsError("wraft new: %s already exist%s; nothing written"
                              % (", ".join(taken), "s" if len(taken) == 1 else ""))
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return list(files)
