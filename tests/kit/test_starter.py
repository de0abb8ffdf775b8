"""`wraft new`'s starter page under Pyodide too (?runtime=py): its form
handler is synchronous, so preventDefault() stops the form from being sent
(an async handler ran after the browser had reloaded the page, and the note
was lost). The starter's own test covers MicroPython (tests/kit/test_wheel.py).

    scripts/in-netns .venv/bin/pytest tests/kit/test_starter.py -q
"""

import pytest

from wraft.cluster import PYODIDE_LOAD_MS
from wraft.server import Server
from wraft.starter import write_starter

pytestmark = pytest.mark.browser


def test_the_starter_adds_a_note_under_pyodide_without_reloading(tmp_path, wraft_cluster,
                                                                 wraft_network):
    write_starter(tmp_path / "notes")
    srv = Server(tmp_path, pages=[tmp_path / "notes"], prefix=wraft_network.prefix).start()
    try:
        c = wraft_cluster("/notes", size=3, server=srv, query="&runtime=py",
                          load_ms=PYODIDE_LOAD_MS)
        writer = (c.leader() + 1) % 3
        page = c.pages[writer]
        page.evaluate("window.before = 1")  # gone if the page reloaded
        page.fill("#text", "from pyodide")
        page.press("#text", "Enter")
        for i in range(3):
            c.pages[i].wait_for_selector("#notes li:text('from pyodide')", timeout=30_000)
        assert page.evaluate("window.before") == 1
        assert c.converged() == ["from pyodide"]
    finally:
        srv.stop()
