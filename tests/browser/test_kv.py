"""Key/value app (/kv) in three windows: put, get (linearizable), delete,
compare-and-set, the live table with (term, index) per key, and watches.

    scripts/in-netns .venv/bin/pytest tests/browser -x -q -k kv
"""

import json
import re

import pytest
from playwright.sync_api import expect

from app_windows import dump_on_failure, win  # noqa: F401 (fixtures used by every test here)

pytestmark = pytest.mark.browser
T = 15_000


def op(page, button, key, value=None, expected=None, absent=False):
    """Fill the form, click `button`, wait for the outcome; returns its text."""
    page.fill("#kv-key", key)
    if value is not None:
        page.fill("#kv-value", value)
    if expected is not None:
        page.fill("#kv-expected", expected)
    page.set_checked("#kv-expect-absent", absent)
    result = page.locator("#kv-result")
    page.evaluate("document.getElementById('kv-result').setAttribute('data-status', 'idle')")
    page.click(button)
    expect(result).to_have_attribute("data-status", re.compile("ok|error|failed"), timeout=T)
    return result.inner_text()


def rows(page):
    return page.evaluate("""() => [...document.querySelectorAll('#kv-rows tr')].map(tr =>
        [...tr.querySelectorAll('td')].map(td => td.textContent))""")


def wait_rows(win, want, nodes=(0, 1, 2)):
    for i in nodes:
        expect(win.pages[i].locator("#kv-rows tr")).to_have_count(len(want), timeout=T)
        for k, (key, value) in enumerate(want):
            row = win.pages[i].locator("#kv-rows tr").nth(k)
            expect(row.locator(".key")).to_have_text(key, timeout=T)
            expect(row.locator(".value")).to_have_text(value, timeout=T)


def position(text):
    m = re.search(r"term (\d+), index (\d+)", text)
    assert m, text
    return [m.group(1), m.group(2)]


def test_put_get_delete_with_term_and_index(win):
    p0, p1, p2 = win.start("/kv", "kv-basic")
    text = op(p0, "#kv-put", "color", "blue")
    assert text.startswith('put "color" = "blue" (was absent) at term'), text
    first = position(text)
    wait_rows(win, [("color", '"blue"')])
    for p in (p0, p1, p2):  # every window shows the entry that changed the key
        assert rows(p) == [["color", '"blue"'] + first]
    text = op(p1, "#kv-put", "color", "green")
    assert 'was "blue"' in text
    second = position(text)
    assert int(second[1]) > int(first[1])
    op(p2, "#kv-put", "alpha", "1")
    wait_rows(win, [("alpha", '"1"'), ("color", '"green"')])  # sorted by key
    expect(p0.locator("#kv-count")).to_have_text("2 keys")

    assert op(p2, "#kv-get", "color").startswith('get "color" = "green" (changed at term %s, index %s'
                                                 % tuple(second))
    assert op(p1, "#kv-del", "color") == 'deleted "color"'
    wait_rows(win, [("alpha", '"1"')])
    assert "not found" in op(p0, "#kv-get", "color")
    assert op(p0, "#kv-del", "color") == '"color" was absent: nothing deleted'
    state = win.converged()
    assert state["data"] == [["alpha", "1"]]
    assert len(state["revisions"]) == 1 and state["revisions"][0][0] == "alpha"


def test_compare_and_set_succeeds_and_fails(win):
    p0, p1, p2 = win.start("/kv", "kv-cas")
    op(p0, "#kv-put", "lock", "free")
    text = op(p1, "#kv-cas", "lock", value="taken-by-1", expected="wrong")
    assert text == 'cas "lock" failed: current value is "free"'
    expect(p1.locator("#kv-result")).to_have_attribute("data-status", "failed")
    text = op(p1, "#kv-cas", "lock", value="taken-by-1", absent=True)
    assert text == 'cas "lock" failed: current value is "free"'
    text = op(p2, "#kv-cas", "lock", value="taken-by-2", expected="free")
    assert text.startswith('cas "lock" succeeded: now "taken-by-2" at term'), text
    text = op(p1, "#kv-cas", "lock", value="taken-by-1", expected="free")  # lost the race
    assert text == 'cas "lock" failed: current value is "taken-by-2"'
    text = op(p0, "#kv-cas", "fresh", value="created", absent=True)  # create if absent
    assert "succeeded" in text
    wait_rows(win, [("fresh", '"created"'), ("lock", '"taken-by-2"')])
    win.converged()


def test_linearizable_read_after_a_write_on_another_window(win):
    p0, p1, p2 = win.start("/kv", "kv-linear")
    for k in range(5):
        writer, reader = [(p0, p2), (p1, p0), (p2, p1)][k % 3]
        value = "v%d" % k
        assert op(writer, "#kv-put", "x", value).startswith('put "x" = "%s"' % value)
        # the write was acknowledged; a read that starts now must see it
        text = op(reader, "#kv-get", "x")
        assert text.startswith('get "x" = "%s"' % value), text


def test_watch_on_a_prefix_shows_live_events(win):
    p0, p1, _ = win.start("/kv", "kv-watch")
    op(p0, "#kv-put", "app/old", "before the watch")
    p1.fill("#watch-prefix", "app/")
    p1.click("#watch-start")
    expect(p1.locator("#watch-info")).to_contain_text('watching keys starting with "app/"')
    op(p0, "#kv-put", "app/a", "1")
    op(p0, "#kv-put", "other", "2")
    op(p0, "#kv-put", "app/b", "3")
    op(p0, "#kv-del", "app/a")
    events = p1.locator("#watch-events li")
    expect(events).to_have_count(3, timeout=T)  # live, newest first, only app/, only new
    expect(events).to_have_text([re.compile(r'index \d+\] delete "app/a"'),
                                 re.compile(r'index \d+\] put "app/b" = "3"'),
                                 re.compile(r'index \d+\] put "app/a" = "1"')])
    idx = [int(events.nth(k).get_attribute("data-index")) for k in range(3)]
    assert idx[0] > idx[1] > idx[2], idx
    p1.click("#watch-stop")
    expect(events).to_have_count(0)
    op(p0, "#kv-put", "app/c", "4")
    expect(p1.locator("#kv-rows tr[data-key='app/c']")).to_have_count(1, timeout=T)
    expect(events).to_have_count(0)  # stopped


def test_bad_input_is_refused_clearly_and_the_store_keeps_working(win):
    p0, p1, _ = win.start("/kv", "kv-bad")
    term, index = position(op(p0, "#kv-put", "k", "v"))
    p0.fill("#kv-key", "")
    p0.click("#kv-put")
    expect(p0.locator("#kv-result")).to_have_text("enter a key")
    expect(p0.locator("#kv-result")).to_have_attribute("data-status", "error")
    # Nothing was proposed: the next write takes the very next log index.
    assert position(op(p0, "#kv-put", "k", "v2")) == [term, str(int(index) + 1)]
    for bad in (["put", 1, 2], ["zap", "k"], "nonsense", ["cas", "k", "v"]):
        out = json.loads(p1.evaluate("c => wraft.propose(c)", json.dumps(bad)))
        assert out["ok"][0] == "error", out
    assert op(p1, "#kv-put", "k", "w").startswith('put "k" = "w" (was "v2")')
    wait_rows(win, [("k", '"w"')])


def test_reload_rebuilds_table_and_revisions_from_local_storage(win):
    p0, _, _ = win.start("/kv", "kv-reload")
    first = position(op(p0, "#kv-put", "a", "1"))
    second = position(op(p0, "#kv-put", "b", "2"))
    before = rows(p0)
    assert before == [["a", '"1"'] + first, ["b", '"2"'] + second]
    p0.reload()
    expect(p0.locator("#kv-rows tr")).to_have_count(2, timeout=T)
    assert rows(p0) == before
