"""TodoMVC with Firefox beside Chromium: window 2 is firefox-esr, driven by
real key and mouse input over WebDriver BiDi; windows 0 and 1 are Chromium.

    scripts/in-netns .venv/bin/pytest tests/browser/test_firefox_todo.py -q
"""

import pytest
from playwright.sync_api import expect

from app_windows import Windows
from browser_helpers import wait_until
from firefox import Mix, firefox  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
T = 15_000
FF = 2

LIST_JS = ("() => [...document.querySelectorAll('.todo-list li')].map(li =>"
           " [li.querySelector('label').textContent, li.classList.contains('completed')])")


@pytest.fixture
def mixed_win(browser, firefox, server, request):  # noqa: F811 (firefox is a fixture)
    w = Windows(Mix([browser, browser, firefox]), server)
    yield w
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        w.dump()
    w.close()


def firefox_list(win):
    return [tuple(x) for x in win.pages[FF].evaluate(LIST_JS)]


def test_todomvc_in_firefox_shows_chromium_changes_and_back(mixed_win):
    win = mixed_win
    p0, p1, ff = win.open("/todo", "fftodo")
    p0.fill(".new-todo", "Buy milk")
    p0.press(".new-todo", "Enter")
    wait_until(lambda: firefox_list(win) == [("Buy milk", False)], timeout=T / 1000,
               what="Chromium's todo in Firefox")
    # Firefox: type a todo and tick Chromium's, with real input events.
    ff.fill(".new-todo", "Walk the dog")
    ff.press(".new-todo", "Enter")
    # As a user would: tick once the list shows the new todo. (A click whose
    # pointer events straddle the re-render of the list is lost.)
    wait_until(lambda: firefox_list(win) == [("Buy milk", False), ("Walk the dog", False)],
               timeout=T / 1000, what="Firefox's own todo in its list")
    ff.click(".todo-list li:first-child .toggle")
    for p in (p0, p1):
        expect(p.locator(".todo-list li label")).to_have_text(["Buy milk", "Walk the dog"], timeout=T)
        expect(p.locator(".todo-list li").nth(0)).to_have_class("completed", timeout=T)
        expect(p.locator(".todo-count")).to_have_text("1 item left")
    # Chromium clears the completed one: gone in Firefox too.
    p1.click(".clear-completed")
    wait_until(lambda: firefox_list(win) == [("Walk the dog", False)], timeout=T / 1000,
               what="clear-completed in Firefox")
    assert ff.evaluate("document.querySelector('.todo-count').textContent") == "1 item left"
    assert win.converged()[0][1] == "Walk the dog"
    assert not win.errors(), win.errors()
