"""Three app windows (wraft0/1/2.localhost), one browser context each, reused
by every test of a module; each test starts them on its own ?cluster= name
(win.start(path, tag)). The windows are a wraft plugin Cluster (wraft/cluster.py)."""

import pytest

from wraft.cluster import Cluster


# Fixtures shared by the app test files (import them there): one set of
# windows per module; a test fails if any window logged an error.
@pytest.fixture(scope="module")
def win(browser, server):
    w = Cluster(browser, server, context_options={"viewport": {"width": 800, "height": 900}})
    yield w
    w.close_all()


@pytest.fixture(autouse=True)
def dump_on_failure(request, win):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        assert not win.errors(), win.errors()  # no exception in any window's handlers
