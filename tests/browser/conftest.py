"""The plain page fixture of the transport tests (tests/browser/pages/): app
pages use the wraft plugin's clusters (wraft/cluster.py) instead.
Each window is its own origin: http://wraft<N>.localhost:<port>/..."""

import pytest

from wraft.cluster import MPY_LOAD_MS


class Window:
    """One page with its console captured."""

    def __init__(self, page, name):
        self.page = page
        self.name = name
        self.console = []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def errors(self):
        return [line for line in self.console if line.startswith(("[error]", "[pageerror]"))]


@pytest.fixture
def open_window(browser, request):
    """open_window(url, wait_for=None, timeout=, record_requests=None, record_headers=None,
    record_responses=None) -> Window; record_requests gets each request's URL,
    record_headers (url, headers), record_responses (url, status, response headers);
    each call gets a fresh browser context (so fresh localStorage).

    On failure the console of every window is printed.
    """
    contexts, windows = [], []

    def _open(url, wait_for=None, timeout=MPY_LOAD_MS, record_requests=None, record_headers=None,
              record_responses=None):
        ctx = browser.new_context()
        contexts.append(ctx)
        w = Window(ctx.new_page(), url)
        windows.append(w)
        if record_requests is not None:  # a list that gets every request URL
            w.page.on("request", lambda r: record_requests.append(r.url))
        if record_headers is not None:
            w.page.on("request", lambda r: record_headers.append((r.url, dict(r.headers))))
        if record_responses is not None:
            w.page.on("response", lambda r: record_responses.append((r.url, r.status, dict(r.headers))))
        w.page.goto(url)
        if wait_for:
            w.page.wait_for_selector(wait_for, timeout=timeout, state="attached")
        return w

    yield _open
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        for w in windows:
            print(f"----- console of {w.name} -----")
            print("\n".join(w.console[-200:]))
    for ctx in contexts:
        ctx.close()
