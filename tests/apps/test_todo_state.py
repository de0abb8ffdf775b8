"""The replicated TodoMVC state machine and its pure view helpers (CPython)."""

import json
import random

import pytest

from components.todo import (MAX_TITLE, TodoState, edit_done_command, items_left_html,
                             new_todo_command, new_todo_id, paste_commands, render_list_html, route_filter,
                             visible_items)


def state_with(*titles):
    s = TodoState()
    for i, t in enumerate(titles):
        assert s.apply(["add", "n0-%d-ab" % i, t]) == "n0-%d-ab" % i
    return s


def titles(s):
    return [it[1] for it in s.items]


def test_add_trims_and_keeps_insertion_order():
    s = state_with("  buy milk ", "walk dog")
    assert s.snapshot() == [["n0-0-ab", "buy milk", False], ["n0-1-ab", "walk dog", False]]


@pytest.mark.parametrize("title", ["", "   ", None, 7, "x" * (MAX_TITLE + 1)])
def test_add_rejects_bad_title_without_changing_state(title):
    s = state_with("a")
    result = s.apply(["add", "n1-1-cd", title])
    assert result[0] == "error"
    assert titles(s) == ["a"]


@pytest.mark.parametrize("item_id", ["", None, 3, "has space", "x" * 81, "<b>"])
def test_add_rejects_bad_id(item_id):
    s = TodoState()
    assert s.apply(["add", item_id, "t"])[0] == "error"
    assert s.items == []


def test_duplicate_add_keeps_the_first():
    s = state_with("first")
    assert s.apply(["add", "n0-0-ab", "second"]) is False
    assert titles(s) == ["first"]


def test_toggle_edit_destroy_by_id_not_position():
    s = state_with("a", "b", "c")
    assert s.apply(["toggle", "n0-1-ab", True]) is True
    assert s.get("n0-1-ab")[2] is True
    assert s.apply(["destroy", "n0-0-ab"]) is True
    # "b" moved to position 0, but its id still names it
    assert s.apply(["edit", "n0-1-ab", "  bee "]) is True
    assert s.snapshot() == [["n0-1-ab", "bee", True], ["n0-2-ab", "c", False]]


@pytest.mark.parametrize("command", [
    ["toggle", "gone", True], ["edit", "gone", "x"], ["destroy", "gone"],
])
def test_commands_naming_a_missing_item_are_no_ops(command):
    s = state_with("a")
    before = s.snapshot()
    assert s.apply(command) is False
    assert s.snapshot() == before


@pytest.mark.parametrize("command", [
    None, [], "add", [1, 2], ["nope"], ["add", "x"], ["toggle", "n0-0-ab", "yes"],
    ["toggle_all"], ["toggle_all", 1], ["edit", "n0-0-ab", "  "], ["clear_completed", 1],
    ["destroy", "a", "b"], {"op": "add"},
])
def test_malformed_commands_are_errors_that_change_nothing(command):
    s = state_with("a")
    before = s.snapshot()
    result = s.apply(command)
    assert isinstance(result, list) and result[0] == "error", result
    assert s.snapshot() == before


def test_toggle_all_sets_the_given_value():
    s = state_with("a", "b")
    s.apply(["toggle", "n0-0-ab", True])
    assert s.apply(["toggle_all", True]) == 2
    assert s.completed_count() == 2
    s.apply(["toggle_all", False])
    assert s.active_count() == 2


def test_clear_completed_removes_only_completed():
    s = state_with("a", "b", "c")
    s.apply(["toggle", "n0-0-ab", True])
    s.apply(["toggle", "n0-2-ab", True])
    assert s.apply(["clear_completed"]) == 2
    assert titles(s) == ["b"]
    assert s.get("n0-0-ab") is None
    assert s.apply(["toggle", "n0-0-ab", False]) is False  # cleared ids stay gone


def test_snapshot_restore_round_trip_is_json():
    s = state_with("a", "b")
    s.apply(["toggle", "n0-1-ab", True])
    data = json.loads(json.dumps(s.snapshot()))
    t = TodoState()
    t.restore(data)
    assert t.snapshot() == s.snapshot()
    assert t.apply(["destroy", "n0-1-ab"]) is True  # the id index is rebuilt too


def test_replicas_applying_the_same_log_agree():
    """Random interleavings of commands from three windows, applied in one log
    order on three replicas (as Raft does), give identical lists."""
    rng = random.Random(5)
    ops = []
    ids = []
    for k in range(300):
        node = rng.randrange(3)
        r = rng.random()
        if r < 0.35 or not ids:
            i = new_todo_id(str(node), k, "%x" % rng.randrange(1 << 32))
            ids.append(i)
            ops.append(["add", i, "todo %d" % k])
        elif r < 0.55:
            ops.append(["toggle", rng.choice(ids), rng.random() < 0.5])
        elif r < 0.7:
            ops.append(["edit", rng.choice(ids), "edited %d" % k])
        elif r < 0.85:
            ops.append(["destroy", rng.choice(ids)])
        elif r < 0.93:
            ops.append(["clear_completed"])
        else:
            ops.append(["toggle_all", rng.random() < 0.5])
    replicas = [TodoState() for _ in range(3)]
    for op in ops:
        results = [r.apply(json.loads(json.dumps(op))) for r in replicas]
        assert results[0] == results[1] == results[2]
    assert replicas[0].snapshot() == replicas[1].snapshot() == replicas[2].snapshot()
    assert len({it[0] for it in replicas[0].items}) == len(replicas[0].items)


@pytest.mark.parametrize("hash_text,expected", [
    ("", "all"), ("#/", "all"), ("#/active", "active"), ("#/completed", "completed"),
    ("#/bogus", "all"), (None, "all"),
])
def test_route_filter(hash_text, expected):
    assert route_filter(hash_text) == expected


def test_visible_items_by_filter():
    s = state_with("a", "b")
    s.apply(["toggle", "n0-1-ab", True])
    assert [it[1] for it in visible_items(s.items, "active")] == ["a"]
    assert [it[1] for it in visible_items(s.items, "completed")] == ["b"]
    assert [it[1] for it in visible_items(s.items, "all")] == ["a", "b"]


def test_counter_is_pluralized():
    assert items_left_html(0) == "<strong>0</strong> items left"
    assert items_left_html(1) == "<strong>1</strong> item left"
    assert items_left_html(2) == "<strong>2</strong> items left"


def test_render_escapes_titles_and_marks_classes():
    s = state_with("<b>&bold</b>", "plain")
    s.apply(["toggle", "n0-1-ab", True])
    html = render_list_html(s.items, "all", editing_id="n0-0-ab")
    assert "<b>&" not in html
    assert "<label>&lt;b&gt;&amp;bold&lt;/b&gt;</label>" in html
    assert '<li data-id="n0-0-ab" class="editing">' in html
    assert '<li data-id="n0-1-ab" class="completed">' in html
    assert html.count('class="edit"') == 1
    assert 'class="toggle" type="checkbox" data-raft-write checked' in html


def test_render_read_only_disables_controls():
    s = state_with("a")
    html = render_list_html(s.items, "all", read_only=True)
    assert html.count(" disabled") == 2  # toggle and destroy


def test_new_todo_command_ignores_blank_and_trims():
    ids = iter(["id1", "id2"])
    assert new_todo_command("   ", lambda: next(ids)) is None
    assert new_todo_command("  hi  ", lambda: next(ids)) == ["add", "id1", "hi"]


def test_edit_done_command():
    assert edit_done_command("x", "  new ") == ["edit", "x", "new"]
    assert edit_done_command("x", "   ") == ["destroy", "x"]
    assert edit_done_command("x", "y" * (MAX_TITLE + 1)) is None


def test_a_paste_of_several_lines_is_one_add_per_line_and_one_line_is_left_alone():
    ids = iter(range(100))
    make = lambda: "n0-%d-ab" % next(ids)
    assert paste_commands("milk\n  \neggs \r\nbread", make) == [
        ["add", "n0-0-ab", "milk"], ["add", "n0-1-ab", "eggs"], ["add", "n0-2-ab", "bread"]]
    assert paste_commands("just one", make) is None
    assert paste_commands("one\n\n   \n", make) is None
    assert paste_commands(None, make) is None
    s = TodoState()
    for c in paste_commands("a\nb", make):
        s.apply(c)
    assert titles(s) == ["a", "b"]
