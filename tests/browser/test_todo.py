"""TodoMVC (/todo) in three windows: the TodoMVC spec behaviours on one window,
replicated to the other two; filters and editing are per window.

    scripts/in-netns .venv/bin/pytest tests/browser -x -q -k todo
"""

import json

import pytest
from playwright.sync_api import expect

from app_windows import dump_on_failure, win  # noqa: F401 (fixtures used by every test here)
from browser_helpers import PYODIDE_LOAD_MS

pytestmark = pytest.mark.browser
T = 15_000  # ms for a replicated change to show (commits take milliseconds)


def add(page, *titles):
    for t in titles:
        page.fill(".new-todo", t)
        page.press(".new-todo", "Enter")


def labels(page):
    return page.locator(".todo-list li label")


def expect_everywhere(win, titles, nodes=(0, 1, 2)):
    for i in nodes:
        expect(labels(win.pages[i])).to_have_text(titles, timeout=T)


def test_add_trims_ignores_blank_and_replicates(win):
    p0, p1, p2 = win.start("/todo", "todo-add")
    for p in (p0, p1, p2):  # no todos: main and footer hidden
        expect(p.locator(".main")).to_be_hidden()
        expect(p.locator(".footer")).to_be_hidden()
    add(p0, "  Buy milk  ", "", "   ", "Walk the dog")
    expect_everywhere(win, ["Buy milk", "Walk the dog"])
    expect(p0.locator(".new-todo")).to_have_value("")
    for p in (p0, p1, p2):
        expect(p.locator(".main")).to_be_visible()
        expect(p.locator(".footer")).to_be_visible()
        expect(p.locator(".todo-count")).to_have_text("2 items left")
        expect(p.locator(".clear-completed")).to_be_hidden()
    assert [t[1] for t in win.converged()] == ["Buy milk", "Walk the dog"]
    ids = [t[0] for t in win.state(0)]
    assert len(set(ids)) == 2 and all(i.startswith("0-") for i in ids), ids  # made by node 0


PASTE = ("text => { const dt = new DataTransfer(); dt.setData('text/plain', text);"
         " const e = new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});"
         " document.querySelector('.new-todo').dispatchEvent(e); return e.defaultPrevented }")


def test_a_paste_of_several_lines_adds_one_todo_per_line_in_one_burst(win):
    p0, _, _ = win.start("/todo", "todo-paste")
    expect(p0.locator(".new-todo")).to_be_enabled(timeout=T)
    assert p0.evaluate(PASTE, "milk\n\n  eggs \nbread") is True  # taken over: one add per line
    expect_everywhere(win, ["milk", "eggs", "bread"])
    assert p0.evaluate(PASTE, "just one line") is False  # the input pastes it as usual
    expect(labels(p0)).to_have_count(3)


def test_toggle_counter_and_clear_completed_visibility(win):
    p0, p1, p2 = win.start("/todo", "todo-toggle")
    add(p0, "one", "two", "three")
    expect_everywhere(win, ["one", "two", "three"])
    p1.locator(".todo-list li").nth(0).locator(".toggle").check()
    for p in (p0, p1, p2):
        expect(p.locator(".todo-list li").nth(0)).to_have_class("completed", timeout=T)
        expect(p.locator(".todo-count")).to_have_text("2 items left")
        expect(p.locator(".clear-completed")).to_be_visible()
    p2.locator(".todo-list li").nth(1).locator(".toggle").check()
    for p in (p0, p1, p2):
        expect(p.locator(".todo-count")).to_have_text("1 item left", timeout=T)
    p0.locator(".todo-list li").nth(0).locator(".toggle").uncheck()
    for p in (p0, p1, p2):
        expect(p.locator(".todo-list li.completed")).to_have_count(1, timeout=T)
        expect(p.locator(".todo-count")).to_have_text("2 items left")


def test_toggle_all_marks_all_then_none(win):
    p0, p1, p2 = win.start("/todo", "todo-all")
    add(p1, "a", "b", "c")
    expect_everywhere(win, ["a", "b", "c"])
    p2.locator(".toggle-all").check()  # the input is styled invisible; its label is clickable
    for p in (p0, p1, p2):
        expect(p.locator(".todo-list li.completed")).to_have_count(3, timeout=T)
        expect(p.locator(".toggle-all")).to_be_checked()
        expect(p.locator(".todo-count")).to_have_text("0 items left")
    p0.locator(".toggle-all").uncheck()
    for p in (p0, p1, p2):
        expect(p.locator(".todo-list li.completed")).to_have_count(0, timeout=T)
        expect(p.locator(".toggle-all")).not_to_be_checked()
    # completing the last active item by hand checks toggle-all too
    for k in range(3):
        p1.locator(".todo-list li").nth(k).locator(".toggle").check()
    expect(p0.locator(".toggle-all")).to_be_checked(timeout=T)


def test_edit_enter_blur_escape_and_empty_removes(win):
    p0, p1, p2 = win.start("/todo", "todo-edit")
    add(p0, "first", "second", "third")
    expect_everywhere(win, ["first", "second", "third"])
    li = p0.locator(".todo-list li").nth(0)

    li.locator("label").dblclick()  # double-click: editing, input focused with the text
    expect(li).to_have_class("editing")
    edit = li.locator(".edit")
    expect(edit).to_be_focused()
    expect(edit).to_have_value("first")
    expect(p1.locator(".todo-list li.editing")).to_have_count(0)  # editing is per window
    edit.fill("  first, renamed  ")
    edit.press("Enter")  # Enter saves (trimmed)
    expect_everywhere(win, ["first, renamed", "second", "third"])
    expect(p0.locator(".todo-list li.editing")).to_have_count(0)

    li = p0.locator(".todo-list li").nth(1)
    li.locator("label").dblclick()
    li.locator(".edit").fill("second, by blur")
    p0.locator(".new-todo").focus()  # blur saves
    expect_everywhere(win, ["first, renamed", "second, by blur", "third"])

    li = p0.locator(".todo-list li").nth(2)
    li.locator("label").dblclick()
    li.locator(".edit").fill("never saved")
    li.locator(".edit").press("Escape")  # Escape cancels
    expect(p0.locator(".todo-list li.editing")).to_have_count(0)
    expect(labels(p0)).to_have_text(["first, renamed", "second, by blur", "third"])

    li = p0.locator(".todo-list li").nth(0)
    li.locator("label").dblclick()
    li.locator(".edit").fill("   ")
    li.locator(".edit").press("Enter")  # an emptied title removes the item
    expect_everywhere(win, ["second, by blur", "third"])
    assert [t[1] for t in win.converged()] == ["second, by blur", "third"]


def test_edit_in_progress_survives_changes_from_other_windows(win):
    p0, p1, _ = win.start("/todo", "todo-edit-live")
    add(p0, "mine", "theirs")
    expect_everywhere(win, ["mine", "theirs"])
    li = p0.locator(".todo-list li").nth(0)
    li.locator("label").dblclick()
    li.locator(".edit").fill("half-typed")
    add(p1, "added elsewhere")
    p1.locator(".todo-list li").nth(1).locator(".toggle").check()
    expect(labels(p0)).to_have_count(3, timeout=T)
    expect(p0.locator(".todo-list li").nth(1)).to_have_class("completed", timeout=T)
    edit = p0.locator(".todo-list li.editing .edit")
    expect(edit).to_have_value("half-typed")
    expect(edit).to_be_focused()
    edit.press("Enter")
    expect_everywhere(win, ["half-typed", "theirs", "added elsewhere"])


def test_destroy_and_clear_completed(win):
    p0, p1, p2 = win.start("/todo", "todo-destroy")
    add(p2, "keep", "drop", "done 1", "done 2")
    expect_everywhere(win, ["keep", "drop", "done 1", "done 2"])
    row = p0.locator(".todo-list li").nth(1)
    row.hover()  # the destroy button shows on hover
    row.locator(".destroy").click()
    expect_everywhere(win, ["keep", "done 1", "done 2"])
    p1.locator(".todo-list li").nth(1).locator(".toggle").check()
    p1.locator(".todo-list li").nth(2).locator(".toggle").check()
    expect(p2.locator(".clear-completed")).to_be_visible(timeout=T)
    p2.locator(".clear-completed").click()
    expect_everywhere(win, ["keep"])
    for p in (p0, p1, p2):
        expect(p.locator(".clear-completed")).to_be_hidden()
        expect(p.locator(".todo-count")).to_have_text("1 item left")
    row = p0.locator(".todo-list li").nth(0)
    row.hover()
    row.locator(".destroy").click()
    for p in (p0, p1, p2):  # the last one gone: main and footer hide again
        expect(p.locator(".todo-list li")).to_have_count(0, timeout=T)
        expect(p.locator(".main")).to_be_hidden()
        expect(p.locator(".footer")).to_be_hidden()


def test_filters_follow_the_url_hash_in_each_window(win):
    p0, p1, _ = win.start("/todo", "todo-filter")
    add(p0, "active one", "done one", "active two")
    expect_everywhere(win, ["active one", "done one", "active two"])
    p0.locator(".todo-list li").nth(1).locator(".toggle").check()
    expect(p1.locator(".todo-list li.completed")).to_have_count(1, timeout=T)

    p0.click(".filters a[href='#/active']")
    expect(labels(p0)).to_have_text(["active one", "active two"])
    expect(p0.locator(".filters a.selected")).to_have_text("Active")
    expect(labels(p1)).to_have_count(3)  # the other window keeps its own filter
    p0.click(".filters a[href='#/completed']")
    expect(labels(p0)).to_have_text(["done one"])
    expect(p0.locator(".filters a.selected")).to_have_text("Completed")
    # a change from another window shows under this window's filter
    p1.locator(".todo-list li").nth(0).locator(".toggle").check()
    expect(labels(p0)).to_have_text(["active one", "done one"], timeout=T)
    p0.click(".filters a[href='#/']")
    expect(labels(p0)).to_have_count(3)
    expect(p0.locator(".filters a.selected")).to_have_text("All")
    # a route in the URL applies on load
    p1.goto(win.url(1, "/todo") + "#/active")
    expect(labels(p1)).to_have_text(["active two"], timeout=T)


def item(page, title):
    return page.locator(".todo-list li", has=page.locator("label", has_text=title))


def test_concurrent_writes_from_three_windows_converge(win):
    pages = win.start("/todo", "todo-race")
    add(pages[0], "shared")
    expect_everywhere(win, ["shared"])
    edit = item(pages[1], "shared")
    edit.locator("label").dblclick()
    edit.locator(".edit").fill("renamed")  # window 1 is mid-edit when the race starts
    # every window fires its adds at once (no waiting in between)
    for i, p in enumerate(pages):
        p.evaluate("""([i]) => {
            const box = document.querySelector('.new-todo');
            for (let k = 0; k < 4; k++) {
                box.value = 'w' + i + ' #' + k;
                box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
            }
        }""", [i])
    # window 0 destroys "shared" while window 1 saves its rename and window 2 completes it
    pages[0].evaluate("document.querySelector('.todo-list li .destroy').click()")
    pages[1].evaluate("""() => { const e = document.querySelector('.todo-list li.editing .edit');
        if (e) e.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true})); }""")
    pages[2].evaluate("""() => { const li = [...document.querySelectorAll('.todo-list li')]
        .find(li => li.querySelector('label').textContent === 'shared');
        if (li) li.querySelector('.toggle').click(); }""")
    for p in pages:
        expect(labels(p)).to_have_count(12, timeout=T)
    final = win.converged()
    titles = [t[1] for t in final]
    assert "shared" not in titles and "renamed" not in titles, titles  # destroy wins either way
    assert sorted(titles) == sorted("w%d #%d" % (i, k) for i in range(3) for k in range(4))
    for i in range(3):  # each window's own adds keep their order
        mine = [t for t in titles if t.startswith("w%d " % i)]
        assert mine == ["w%d #%d" % (i, k) for k in range(4)]
    for p in pages:  # and every window shows the same order
        expect(labels(p)).to_have_text(titles)
        expect(p.locator(".todo-list li.editing")).to_have_count(0)


def test_commands_on_missing_items_and_bad_commands_do_not_poison_the_log(win):
    p0, p1, _ = win.start("/todo", "todo-bad")
    add(p0, "real")
    expect_everywhere(win, ["real"])

    def propose(page, command):
        return json.loads(page.evaluate("c => wraft.propose(c)", json.dumps(command)))
    assert propose(p1, ["toggle", "no-such-id", True]) == {"ok": False}
    assert propose(p1, ["edit", "no-such-id", "x"]) == {"ok": False}
    assert propose(p0, ["destroy", "no-such-id"]) == {"ok": False}
    assert propose(p0, ["add", "bad id!", "x"])["ok"][0] == "error"
    assert propose(p0, ["frobnicate"])["ok"][0] == "error"
    assert propose(p0, "not a list")["ok"][0] == "error"
    add(p1, "still writable")  # the log keeps going
    expect_everywhere(win, ["real", "still writable"])


def test_reload_restores_the_list_from_local_storage(win):
    p0, _, _ = win.start("/todo", "todo-reload")
    add(p0, "persisted", "also persisted")
    p0.locator(".todo-list li").nth(1).locator(".toggle").check()
    expect(p0.locator(".todo-list li.completed")).to_have_count(1, timeout=T)
    p0.reload()
    expect(labels(p0)).to_have_text(["persisted", "also persisted"], timeout=T)
    expect(p0.locator(".todo-list li").nth(1)).to_have_class("completed")


def test_a_pyodide_window_replicates_with_micropython_windows(win):
    p0, p1, p2 = win.start("/todo", "todo-pyodide", extra={2: "&runtime=py"},
                          load_ms=2 * PYODIDE_LOAD_MS)  # slow under CI load
    assert p2.locator("body").get_attribute("data-py-impl") == "cpython"
    add(p2, "from pyodide")
    add(p0, "from micropython")
    expect_everywhere(win, ["from pyodide", "from micropython"])
    p2.locator(".todo-list li").nth(1).locator(".toggle").check()
    for p in (p0, p1, p2):
        expect(p.locator(".todo-count")).to_have_text("1 item left", timeout=T)
    win.converged()


def test_minority_window_is_read_only_and_loses_no_typed_text(win):
    p0, _, _ = win.start("/todo", "todo-minority")
    add(p0, "before")
    expect_everywhere(win, ["before"])
    win.leave([1, 2])
    # Right away, before this window knows it is alone, try to add a todo.
    accepted = p0.evaluate("""() => {
        const box = document.querySelector('.new-todo');
        box.value = 'typed while alone';
        box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
        return box.value === '';
    }""")
    expect(p0.locator("html")).to_have_attribute("data-raft-readonly", "true", timeout=20_000)
    expect(p0.locator(".new-todo")).to_be_disabled()
    expect(p0.locator(".todo-list .toggle")).to_be_disabled()
    expect(p0.locator(".todo-list .destroy")).to_be_disabled()
    expect(p0.locator("raft-status")).to_contain_text("read-only")
    print("write accepted before read-only:", accepted)
    if accepted:  # the write could not commit: said so, and the text came back
        expect(p0.locator("#todo-error")).to_contain_text("not saved", timeout=30_000)
    expect(p0.locator(".new-todo")).to_have_value("typed while alone", timeout=30_000)
    expect(labels(p0)).to_have_text(["before"])  # the list is still shown, unchanged
