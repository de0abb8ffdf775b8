"""KVState: raft.kv plus (term, index) revisions per key and watch events (CPython)."""

import json

import pytest

from components.kv_view import (MAX_KEY, MAX_VALUE, KVState, change_of, check_key, check_value,
                                format_cas, format_del, format_get, format_put,
                                render_events_html, render_rows_html)
from raft.sessions import Sessions, apply_entries


class Log:
    """Applies committed entries the way every replica does: through the
    session table's apply loop (raft.sessions.apply_entries), which hands the
    state each command once with its entry's index and term."""

    def __init__(self, state):
        self.state = state
        self.entries = []
        self.sessions = Sessions()

    def commit(self, term, *commands, seqs=None):
        first = len(self.entries) + 1
        batch = []
        for k, c in enumerate(commands):
            seq = seqs[k] if seqs else len(self.entries) + len(batch) + 1
            batch.append([term, "c", seq, c])
        self.entries.extend(batch)
        wanted = dict((("c", e[2]), None) for e in batch)
        results = []
        apply_entries(self.sessions, first, batch, self.state, wanted, results)
        return [r[3] for r in sorted(results, key=lambda r: r[1])]


def test_put_records_term_and_index_of_its_entry():
    s = KVState()
    log = Log(s)
    assert log.commit(1, ["put", "a", "1"], ["put", "b", "2"]) == [None, None]
    assert log.commit(2, ["put", "a", "3"]) == ["1"]
    assert s.rows() == [["a", "3", 2, 3], ["b", "2", 1, 2]]
    assert s.events == [[1, 1, "put", "a", "1"], [2, 1, "put", "b", "2"], [3, 2, "put", "a", "3"]]


def test_failed_cas_and_missing_delete_change_nothing():
    s = KVState()
    log = Log(s)
    log.commit(1, ["put", "k", "v"])
    assert log.commit(1, ["cas", "k", "wrong", "x"], ["del", "nope"]) == [[False, "v"], False]
    assert s.rows() == [["k", "v", 1, 1]]
    assert len(s.events) == 1


def test_successful_cas_and_delete_are_changes():
    s = KVState()
    log = Log(s)
    log.commit(1, ["cas", "k", None, "new"])  # create-if-absent
    assert s.rows() == [["k", "new", 1, 1]]
    assert log.commit(3, ["cas", "k", "new", "newer"]) == [[True, "newer"]]
    assert s.rows() == [["k", "newer", 3, 2]]
    assert log.commit(3, ["del", "k"]) == [True]
    assert s.rows() == [] and s.revisions == {}
    assert [e[2] for e in s.events] == ["put", "put", "del"]


def test_entries_skipped_by_sessions_do_not_shift_positions():
    """A deduplicated retry is in the log but not applied: the next change must
    still get its own index, not the skipped entry's."""
    s = KVState()
    log = Log(s)
    log.commit(1, ["put", "a", "1"], seqs=[1])
    # entry 2 (a retry of entry 1) is not applied; entry 3 is
    log.commit(1, ["put", "a", "1"], ["put", "b", "2"], seqs=[1, 2])
    assert s.rows() == [["a", "1", 1, 1], ["b", "2", 1, 3]]
    assert [e[0] for e in s.events] == [1, 3]


@pytest.mark.parametrize("command", [None, [], ["put"], ["put", 1, 2], ["put", "a"],
                                     ["zap", "a"], ["cas", "a", 1], "put a 1"])
def test_bad_commands_are_kv_errors_and_not_changes(command):
    s = KVState()
    result = s.apply_entry(1, 1, command)
    assert isinstance(result, list) and result[0] == "error"
    assert change_of(command, result) is None
    assert s.rows() == [] and s.events == []


def test_snapshot_restore_keeps_data_and_revisions():
    s = KVState()
    log = Log(s)
    log.commit(4, ["put", "x", {"n": 1}], ["put", "y", "2"])
    data = json.loads(json.dumps(s.snapshot()))
    t = KVState()
    t.restore(data)
    assert t.rows() == s.rows()
    assert t.snapshot() == s.snapshot()


def test_events_are_bounded():
    from components.kv_view import MAX_EVENTS
    s = KVState()
    log = Log(s)
    for i in range(MAX_EVENTS + 20):
        log.commit(1, ["put", "k", str(i)])
    assert len(s.events) == MAX_EVENTS
    assert s.events[-1][4] == str(MAX_EVENTS + 19)


def test_the_app_handle_stamps_changes_and_lists_each_write_once():
    from raft.browser.app import App
    app = App(KVState(), {})  # what start(KVState) builds
    seen = []
    app.on_applied(lambda state, first, entries: seen.append((state, first)))
    cmd, retry = ["put", "a", "1"], ["put", "a", "1"]  # equal, not the same object
    batch = [[2, "c", 1, cmd], [2, "c", 1, retry], [2, None, 0, None], [2, "c", 2, ["del", "b"]]]
    # the state machine the runtime's core applies to; then the runtime's hook
    apply_entries(Sessions(), 7, batch, app.guarded_state(), None, [])
    app._record_applied(7, batch)
    assert seen == [(app.state, 7)]
    assert app.state.rows() == [["a", "1", 2, 7]]
    # index 8 (a retried copy) is applied, and listed, once; 9 is a no-op
    assert app.applied == [[7, cmd], [10, ["del", "b"]]]


def test_input_checks():
    assert check_key("") == "enter a key"
    assert "too long" in check_key("k" * (MAX_KEY + 1))
    assert check_key("a/b") is None
    assert check_value("") is None
    assert "too long" in check_value("v" * (MAX_VALUE + 1))


def test_result_texts():
    assert format_put("a", "1", None, [2, 5]) == 'put "a" = "1" (was absent) at term 2, index 5'
    assert format_del("a", True) == 'deleted "a"'
    assert "absent" in format_del("a", False)
    assert format_cas("a", [False, "7"], None) == 'cas "a" failed: current value is "7"'
    assert format_cas("a", [False, None], None) == 'cas "a" failed: current value is absent'
    assert "succeeded" in format_cas("a", [True, "8"], [1, 9])
    assert format_get("a", None, None, 4) == 'get "a": not found (linearizable read at commit 4)'
    assert 'get "a" = "1" (changed at term 1, index 3' in format_get("a", "1", [1, 3], 4)


def test_rows_and_events_html_escape():
    html = render_rows_html([["<k>", "<v>", 1, 2]])
    assert "<k>" not in html and "&lt;k&gt;" in html
    events = [[1, 1, "put", "app/a", "1"], [2, 1, "put", "other", "2"], [3, 2, "del", "app/a", None]]
    html = render_events_html(events, "app/", 0)
    assert html.index('data-index="3"') < html.index('data-index="1"')  # newest first
    assert "other" not in html
    assert render_events_html(events, "app/", 1).count("<li") == 1  # only after the start index
    assert render_events_html(events, "", 0).count("<li") == 3
