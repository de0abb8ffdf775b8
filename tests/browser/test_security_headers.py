"""Every app page runs under the server's real headers (signaling/headers.py)
in Chromium, under MicroPython and Pyodide, with no CSP violation; pages
send no Referer and cannot be framed."""

from pathlib import Path

import pytest

from browser_helpers import PYODIDE_LOAD_MS, wait_until

PAGES_DIR = Path(__file__).resolve().parents[2] / "pages"
PAGES = sorted("/" if p.stem == "index" else "/" + p.stem for p in PAGES_DIR.glob("*.html"))
# Client windows run other code (raft/browser/client_app.py).
CLIENT_PAGES = ["/todo?client=1", "/kv?client=1"]

# Installed before any page script: every violation, enforced or not.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.__cspViolations.push(
  [e.effectiveDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber].join(" ")));
"""


@pytest.fixture(scope="module")
def contexts(browser):
    """One browser context per runtime: its HTTP cache spares the later pages
    most of Pyodide's load (the runtime files are immutable)."""
    made = {}
    yield lambda runtime: made.setdefault(runtime, browser.new_context())
    for ctx in made.values():
        ctx.close()


@pytest.fixture
def load(contexts, server):
    pages = []

    def _load(path, runtime):
        page = contexts(runtime).new_page()
        pages.append(page)
        console, referers = [], []
        page.on("console", lambda m: console.append(m.text))
        page.on("request", lambda r: referers.append(r.headers.get("referer")))
        page.add_init_script(RECORD_VIOLATIONS)
        sep = "&" if "?" in path else "?"
        response = page.goto(server.base(0) + path + (sep + "runtime=py" if runtime == "py" else ""))
        page.wait_for_selector("html[data-wraft-done]", state="attached",
                               timeout=PYODIDE_LOAD_MS if runtime == "py" else 15_000)
        page.wait_for_timeout(500)  # the introducer socket and late fetches
        return page, response, console, referers

    yield _load
    for page in pages:
        page.close()


@pytest.mark.browser
@pytest.mark.parametrize("runtime", ["mpy", "py"])
@pytest.mark.parametrize("path", PAGES + CLIENT_PAGES)
def test_page_runs_under_the_csp_without_violations(load, path, runtime):
    page, response, console, referers = load(path, runtime)
    headers = response.headers
    assert "wasm-unsafe-eval" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and headers["server"] == "wraft"
    assert page.evaluate("document.documentElement.dataset.wraftRuntime") == runtime
    violations = page.evaluate("window.__cspViolations")
    assert violations == [], violations
    assert not [line for line in console if "Content Security Policy" in line], console
    assert page.locator(".py-error").count() == 0
    assert not any(referers), referers  # no request says where it came from


@pytest.mark.browser
def test_pages_cannot_be_framed(browser, server):
    """frame-ancestors 'none': another site cannot overlay the membership buttons."""
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text))
        # about:blank has no CSP of its own: only the framed page's headers can refuse
        page.set_content(f'<iframe src="{server.base(0)}/todo"></iframe>')
        frame = wait_until(lambda: next((f for f in page.frames if f != page.main_frame), None),
                           what="the child frame")
        wait_until(lambda: frame.url != "about:blank", what="the frame navigated")
        page.wait_for_timeout(1000)
        assert frame.url.startswith("chrome-error://"), frame.url
        assert any("frame-ancestors 'none'" in line for line in console), console
    finally:
        ctx.close()
