"""The status panel's picture, its text alternatives and the keyboard, in
three counter windows; TodoMVC's new-todo field takes the focus once it can
write.

    scripts/in-netns .venv/bin/pytest tests/browser/test_status_view.py -q
"""

import json

import pytest

from app_windows import dump_on_failure, win  # noqa: F401 (fixtures used by every test here)
from wraft.cluster import unique_name, wait_until

pytestmark = pytest.mark.browser

PICTURE = "raft-status [data-raft-part=picture]"
ROLES = """() => Object.fromEntries([...document.querySelectorAll('[data-raft-pic-node]')]
    .map(g => [g.dataset.raftPicNode, g.dataset.raftPicRole]))"""
ACTIVE_KEY = "() => document.activeElement && document.activeElement.getAttribute('data-raft-key')"


def roles_of(page):
    return page.evaluate(ROLES)


def test_every_window_draws_the_cluster_and_says_it_in_words(win):
    pages = win.start("/counter", "pic")
    leader = next(i for i in range(3) if win.attr(i, "data-raft-role") == "leader")
    for i, page in enumerate(pages):
        # Each window: itself with its role, and the leader (a star) in every picture.
        roles = wait_until(lambda: (r := roles_of(page)) and r.get(str(i)) == win.attr(i, "data-raft-role")
                           and r.get(str(leader)) == "leader" and r, what="picture of %d" % i)
        assert sorted(roles) == ["0", "1", "2"]
        assert page.locator(PICTURE + " [data-raft-pic-node='%d'] .raft-star" % leader).count() == 1
        live = page.locator("raft-status [aria-live=polite]")
        assert live.count() == 1
        wait_until(lambda: "writable." in live.text_content(), what="live summary")
        assert page.locator("raft-status table th[scope=col]").count() == 4
    # The leader sees its followers answer; a follower's election ring drains.
    lp = pages[leader]
    wait_until(lambda: set(roles_of(lp).values()) == {"leader", "follower"}, what="live followers")
    follower = pages[(leader + 1) % 3]
    left = follower.locator(PICTURE + " .raft-ring").get_attribute("data-raft-election-left")
    assert 0 <= int(left) <= 3000
    assert lp.locator(PICTURE + " .raft-ring").count() == 0
    # Writes move the commit mark in every picture.
    for _ in range(5):
        assert "ok" in json.loads(lp.evaluate("wraft.propose('1')"))
    for page in pages:
        wait_until(lambda: "commit" in (page.locator(PICTURE + " .raft-me").get_attribute("aria-label")
                                        or "") and page.locator(PICTURE + " .raft-me")
                   .get_attribute("aria-label").split("commit ")[1].split(",")[0] != "0",
                   what="commit in the picture")


def test_the_focus_survives_redraws_and_the_arrows_move_it(win):
    pages = win.start("/counter", "focus")
    page = pages[0]
    node = page.locator(PICTURE + " [data-raft-key='node:1']")
    node.focus()
    # Mark the element, then make the picture redraw (writes move the commit).
    page.evaluate("() => { document.activeElement.dataset.old = '1'; }")
    for _ in range(3):
        page.evaluate("wraft.propose('1')")
    wait_until(lambda: page.evaluate("() => !document.querySelector('[data-old]')"),
               timeout=10, what="the picture redrawn")
    assert page.evaluate(ACTIVE_KEY) == "node:1"  # a new element, focused again
    page.keyboard.press("ArrowDown")
    assert page.evaluate(ACTIVE_KEY) == "node:2"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert page.evaluate(ACTIVE_KEY) == "node:0"
    # A members control keeps the focus too, and Tab reaches it.
    button = page.locator("raft-status [data-raft-key='remove:2']")
    button.focus()
    button.press("Enter")  # asks first: the focus goes to the answer
    assert page.evaluate(ACTIVE_KEY) == "confirm"
    page.keyboard.press("Escape")
    page.locator("raft-status [data-raft-action=cancel]").press("Enter")
    assert page.locator("raft-status [data-raft-confirming]").count() == 0
    assert win.attr(0, "data-raft-voters") == "0,1,2"


def test_the_new_todo_field_takes_the_focus_once_writable_unless_the_user_chose(win):
    win.name, win.path = unique_name("todo-focus"), "/todo"
    p0 = win.open(0)
    # Alone, window 0 cannot write; the user focuses a link meanwhile.
    assert p0.locator(".new-todo").is_disabled()
    p0.locator("footer.info a").focus()
    p1, p2 = win.open(1), win.open(2)
    win.wait_writable()
    focused = "() => document.activeElement.className || document.activeElement.tagName"
    for p in (p1, p2):
        wait_until(lambda: p.evaluate(focused) == "new-todo", timeout=10, what="new-todo focused")
    assert p0.evaluate(focused) == "A"
    p1.keyboard.type("typed straight away")
    p1.keyboard.press("Enter")
    wait_until(lambda: [t[1] for t in win.state(2)] == ["typed straight away"], what="the todo")
