"""Record format and recovery of the durable log (raft/records.py), in CPython."""

import json
import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from raft.records import (
    DamagedStorage, MemoryKV, RecordCorrupt, RecordLog, StorageFull,
    decode_log_record, encode_log_record, namespace, seal, split_batch, unseal,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CountingKV(MemoryKV):
    def __init__(self, quota=None):
        super().__init__(quota)
        self.sets = 0

    def set(self, key, value):
        self.sets += 1
        super().set(key, value)


def entries(first, n, term=1):
    return [[term, "cmd%d" % i] for i in range(first, first + n)]


def reload(kv, cluster="c", node=0):
    return RecordLog(kv, cluster, node).load()


def test_seal_roundtrip_and_any_flipped_character_is_detected():
    text = seal({"a": [1, 2, "é"]})
    assert unseal(text) == {"a": [1, 2, "é"]}
    for i in range(len(text)):
        flipped = text[:i] + chr(ord(text[i]) ^ 1) + text[i + 1:]
        with pytest.raises(RecordCorrupt):
            unseal(flipped)
    for bad in ["", "0000", None, "zzzzzzzz{}"]:
        with pytest.raises(RecordCorrupt):
            unseal(bad)


def test_namespaces_of_clusters_and_nodes_never_clash():
    names = {namespace(c, n) for c in ["a", "a:1", "a%3A1", "/todo", "/todo:x"] for n in [0, 1, 12]}
    assert len(names) == 15
    kv = MemoryKV()
    a, b = RecordLog(kv, "x", 1), RecordLog(kv, "x:1", 0)
    a.save(1, entries(1, 3), term=2, vote=1, commit=2)
    b.save(1, entries(1, 1, term=5), term=5, vote=None, commit=0)
    ra, rb = reload(kv, "x", 1), reload(kv, "x:1", 0)
    assert (ra.term, ra.vote, ra.commit, ra.entries) == (2, 1, 2, entries(1, 3))
    assert (rb.term, rb.vote, rb.commit, rb.entries) == (5, None, 0, entries(1, 1, term=5))
    assert all(k.startswith("wraft:") for k in kv.keys())


def test_fresh_store_loads_empty():
    r = reload(MemoryKV())
    assert (r.term, r.vote, r.commit, r.entries, r.first_index, r.repaired) == (0, None, 0, [], 1, None)


def test_one_set_item_per_batch_and_hard_state_written_only_on_change():
    kv = CountingKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 100), term=1, vote=0, commit=0)
    assert kv.sets == 2  # one record for 100 entries + the hard state
    log.save(None, None, term=1, vote=0, commit=0)
    assert kv.sets == 2
    log.save(101, entries(101, 50), term=1, vote=0, commit=120)
    assert kv.sets == 4
    assert reload(kv).entries == entries(1, 150)


def test_conflicting_tail_is_replaced_inside_and_across_records():
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 5), term=1, vote=0, commit=2)
    log.save(6, entries(6, 5), term=1, vote=0, commit=2)
    log.save(11, entries(11, 5), term=1, vote=0, commit=2)
    # Leader of term 2 overwrites from index 4 (inside the first record).
    log.save(4, entries(4, 2, term=2), term=2, vote=None, commit=3)
    r = reload(kv)
    assert r.entries == entries(1, 3) + entries(4, 2, term=2)
    assert r.term == 2 and r.commit == 3
    assert sorted(k for k in kv.keys() if ":log:" in k) == ["wraft:c:0:log:1"]
    # Overwrite exactly at a record boundary, then append after it.
    log.save(6, entries(6, 1, term=3))
    log.save(6, entries(6, 2, term=4))
    log.save(8, entries(8, 1, term=4))
    assert reload(kv).entries == entries(1, 3) + entries(4, 2, term=2) + entries(6, 2, term=4) + entries(8, 1, term=4)


def test_big_batch_is_split_into_consecutive_records():
    big = [[1, "x" * 1000] for _ in range(50)]
    runs = split_batch(big, limit=10_000)
    assert len(runs) > 1 and sum(runs, []) == big
    assert split_batch([], limit=10) == []
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    import raft.records as rec
    old = rec.MAX_RECORD_CHARS
    rec.MAX_RECORD_CHARS = 10_000
    try:
        log.save(1, big, term=1, vote=None, commit=50)
    finally:
        rec.MAX_RECORD_CHARS = old
    assert len([k for k in kv.keys() if ":log:" in k]) == len(runs)
    assert reload(kv).entries == big


def _corrupt(kv, key):
    v = kv.data[key]
    kv.data[key] = v[:20] + ("A" if v[20] != "A" else "B") + v[21:]


def _three_records(commit):
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 4), term=1, vote=0, commit=0)
    log.save(5, entries(5, 4), term=1, vote=0, commit=0)
    log.save(9, entries(9, 4), term=1, vote=0, commit=commit)
    return kv


def test_corrupt_uncommitted_tail_is_truncated_and_reported():
    kv = _three_records(commit=6)
    _corrupt(kv, "wraft:c:0:log:9")
    r = reload(kv)
    assert r.entries == entries(1, 8) and r.commit == 6
    assert "index 9" in r.repaired and "checksum" in r.repaired
    assert "wraft:c:0:log:9" not in kv.data
    # The repair is durable and the log keeps working after it.
    assert reload(kv).repaired is None
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(9, entries(9, 1, term=2), term=2, vote=None, commit=9)
    assert reload(kv).entries == entries(1, 8) + entries(9, 1, term=2)


def test_corrupt_tail_straddling_commit_point_is_refused_and_left_untouched():
    kv = _three_records(commit=10)
    _corrupt(kv, "wraft:c:0:log:9")
    before = dict(kv.data)
    with pytest.raises(DamagedStorage, match="committed log data is damaged at index 9"):
        reload(kv)
    assert kv.data == before  # refusing to start destroys nothing


def test_corrupt_committed_middle_record_is_refused():
    kv = _three_records(commit=6)
    _corrupt(kv, "wraft:c:0:log:5")
    with pytest.raises(DamagedStorage, match="index 5"):
        reload(kv)


def test_missing_record_is_a_gap():
    kv = _three_records(commit=3)
    del kv.data["wraft:c:0:log:5"]
    r = reload(kv)
    assert r.entries == entries(1, 4) and "entries 5..8 are missing" in r.repaired
    assert "wraft:c:0:log:9" not in kv.data
    kv = _three_records(commit=5)
    del kv.data["wraft:c:0:log:5"]
    with pytest.raises(DamagedStorage, match="index 5"):
        reload(kv)


def test_record_under_the_wrong_key_is_corrupt():
    kv = _three_records(commit=0)
    kv.data["wraft:c:0:log:9"] = encode_log_record(10, entries(10, 3))
    r = reload(kv)
    assert "does not match its key" in r.repaired and r.last_index == 8
    with pytest.raises(RecordCorrupt):
        decode_log_record(encode_log_record(1, []), 1)


def test_damaged_hard_state_or_commit_beyond_log_is_refused():
    kv = _three_records(commit=2)
    _corrupt(kv, "wraft:c:0:hard")
    with pytest.raises(DamagedStorage, match="term/vote record"):
        reload(kv)
    kv = _three_records(commit=12)
    for key in ["wraft:c:0:log:5", "wraft:c:0:log:9"]:
        del kv.data[key]
    with pytest.raises(DamagedStorage):
        reload(kv)
    kv = MemoryKV()
    kv.data["wraft:c:0:hard"] = seal({"v": 1, "term": -1, "vote": None, "commit": 0})
    with pytest.raises(DamagedStorage):
        reload(kv)


def test_quota_full_raises_and_leaves_a_consistent_earlier_state():
    kv = MemoryKV(quota=2_000)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 5), term=1, vote=0, commit=3)
    with pytest.raises(StorageFull):
        log.save(6, [[1, "y" * 3000]], term=1, vote=0, commit=6)
    r = reload(kv)
    assert (r.entries, r.commit) == (entries(1, 5), 3)
    # Rewriting a record in place (conflict at its first index) that no longer
    # fits keeps the old record both on disk and in the in-memory view.
    with pytest.raises(StorageFull):
        log.save(1, [[2, "z" * 3000]], term=2, vote=None, commit=3)
    assert log.last_index == 5
    log.save(6, entries(6, 1), term=1, vote=0, commit=4)  # small writes still fit
    assert reload(kv).entries == entries(1, 6)


def test_snapshot_drops_covered_records_and_sets_first_index():
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save_snapshot(6, 1, {"count": 6})
    assert "wraft:c:0:log:1" not in kv.data and "wraft:c:0:log:5" in kv.data
    r = reload(kv)
    assert r.snapshot == (6, 1, {"count": 6})
    assert r.first_index == 7 and r.entries == entries(7, 6) and r.last_index == 12
    _corrupt(kv, "wraft:c:0:snap")
    with pytest.raises(DamagedStorage, match="snapshot"):
        reload(kv)


def test_wipe_removes_only_this_node():
    kv = MemoryKV()
    a, b = RecordLog(kv, "c", 0), RecordLog(kv, "c", 1)
    a.save(1, entries(1, 2), term=1, vote=0, commit=1)
    b.save(1, entries(1, 2), term=1, vote=0, commit=1)
    kv.set("unrelated", "x")
    a.wipe()
    assert reload(kv, "c", 0).entries == [] and reload(kv, "c", 1).entries == entries(1, 2)
    assert kv.get("unrelated") == "x"


ops = st.lists(st.tuples(st.integers(0, 30), st.integers(1, 6), st.integers(0, 40)), max_size=25)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_log_matches_a_plain_list_model_after_any_appends_and_reloads(steps):
    kv = MemoryKV()
    log = RecordLog(kv, "m", 3)
    log.load()
    model = []
    for term, (back, n, commit) in enumerate(steps, start=1):
        first = max(1, len(model) + 1 - back)
        batch = [[term, "%d-%d" % (term, i)] for i in range(n)]
        model[first - 1:] = batch
        commit = min(commit, len(model))
        log.save(first, batch, term=term, vote=None, commit=commit)
        if term % 3 == 0:
            log = RecordLog(kv, "m", 3)
            r = log.load()
            assert r.entries == model and r.commit == commit and r.repaired is None


def run_records_in_micropython(prog):
    """Run `prog` (which imports records and prints "RESULT <json>") under
    real MicroPython through Node.js; returns (the decoded result, stdout)."""
    mjs = os.path.join(ROOT, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs")
    if not os.path.exists(mjs):
        pytest.skip("MicroPython npm package not installed")
    src = open(os.path.join(ROOT, "raft/records.py")).read()
    script = """
import { loadMicroPython } from %s;
const mp = await loadMicroPython({stdout: (s) => console.log(s)});
mp.FS.mkdir('/lib'); mp.FS.writeFile('/lib/records.py', %s);
mp.runPython("import sys; sys.path.append('/lib')");
mp.runPython(%s);
""" % (json.dumps("file://" + mjs), json.dumps(src), json.dumps(prog))
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout + out.stderr
    return json.loads(line[0][7:]), out


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_records_run_unchanged_under_micropython():
    prog = """
import records
kv = records.MemoryKV(quota=3000)
log = records.RecordLog(kv, "/todo", 2)
log.load()
log.save(1, [[1, {"op": "add", "t": "é"}], [1, 2]], term=1, vote=2, commit=1)
log.save(3, [[1, 3], [1, 4]], term=1, vote=2, commit=3)
log.save(2, [[2, "x"]], term=2, vote=None, commit=1)
try:
    log.save(3, [[2, "y" * 5000]])
    print("no quota error")
except records.StorageFull:
    pass
r = records.RecordLog(kv, "/todo", 2).load()
k = "wraft:/todo:2:log:1"
kv.data[k] = kv.data[k][:-3] + "0]}"
try:
    records.RecordLog(kv, "/todo", 2).load()
    print("no damage seen")
except records.DamagedStorage:
    pass
import json
print("RESULT " + json.dumps([r.term, r.vote, r.commit, r.entries]))
"""
    result, out = run_records_in_micropython(prog)
    assert result == [2, None, 1, [[1, {"op": "add", "t": "é"}], [2, "x"]]]
    assert "no quota error" not in out.stdout and "no damage seen" not in out.stdout


def test_overlapping_record_cuts_the_log_before_it_when_uncommitted():
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 4), term=1, vote=0, commit=2)
    kv.set("wraft:c:0:log:3", encode_log_record(3, entries(3, 3, term=9)))
    r = reload(kv)
    assert r.entries == entries(1, 2) and "overlaps" in r.repaired
    assert sorted(k for k in kv.keys() if ":log:" in k) == ["wraft:c:0:log:1"]
    assert reload(kv).entries == entries(1, 2)
    kv.set("wraft:c:0:log:2", encode_log_record(2, entries(2, 1, term=9)))
    with pytest.raises(DamagedStorage, match="index 2"):
        reload(kv)


# ------------------------------------------------------------------ snapshots (issue 6)
class FailingKV(MemoryKV):
    """Raises StorageFull on the n-th set (a crash or quota hit mid-write)."""

    def __init__(self, fail_at):
        super().__init__()
        self.fail_at = fail_at
        self.sets = 0

    def set(self, key, value):
        self.sets += 1
        if self.sets == self.fail_at:
            raise StorageFull("simulated")
        super().set(key, value)


def _big_state(n):
    return {"sm": [["k%d" % i, "v" * 50] for i in range(n)], "index": 0}


def test_snapshot_larger_than_one_value_is_split_and_reloads(monkeypatch):
    import raft.records as rec
    monkeypatch.setattr(rec, "MAX_RECORD_CHARS", 1000)
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    state = _big_state(100)
    log.save_snapshot(10, 1, state)
    parts = [k for k in kv.keys() if ":snap:" in k]
    assert len(parts) > 5
    r = reload(kv)
    assert r.snapshot == (10, 1, state) and r.entries == entries(11, 2)
    # a second snapshot replaces the first: old parts are gone
    log.save(13, entries(13, 3), term=1, vote=0, commit=15)
    log.save_snapshot(15, 1, _big_state(3))
    assert all(k.startswith("wraft:c:0:snap:2:") for k in kv.keys() if ":snap:" in k)
    r = reload(kv)
    assert r.snapshot[0] == 15 and r.entries == [] and r.first_index == 16


def test_crash_mid_snapshot_write_keeps_the_old_snapshot_and_log(monkeypatch):
    import raft.records as rec
    monkeypatch.setattr(rec, "MAX_RECORD_CHARS", 1000)
    n_sets = len(rec.split_text(json.dumps(_big_state(60), separators=(",", ":")), 1000)) + 1
    assert n_sets > 3
    for fail_at in range(1, n_sets + 1):     # every part, then the manifest
        kv = _three_records(commit=10)
        log = RecordLog(kv, "c", 0)
        log.load()
        log.save_snapshot(4, 1, {"old": 1})
        before = dict(kv.data)
        kv.__class__ = FailingKV
        kv.fail_at, kv.sets = fail_at, 0
        with pytest.raises(StorageFull):
            log.save_snapshot(10, 1, _big_state(60))   # parts..., then the manifest
        kv.__class__ = MemoryKV
        assert kv.data == before          # nothing half-written is left
        r = reload(kv)
        assert r.snapshot == (4, 1, {"old": 1}) and r.entries == entries(5, 8)


def test_orphan_parts_of_an_unfinished_write_are_removed_at_load():
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save_snapshot(6, 1, {"x": 1})
    kv.set("wraft:c:0:snap:9:0", "deadbeef{}")          # crash after a part, before the switch
    r = reload(kv)
    assert r.snapshot == (6, 1, {"x": 1})
    assert "wraft:c:0:snap:9:0" not in kv.data and "wraft:c:0:snap:1:0" in kv.data


def test_damaged_or_missing_snapshot_part_refuses_to_start_with_a_clear_message(monkeypatch):
    import raft.records as rec
    monkeypatch.setattr(rec, "MAX_RECORD_CHARS", 1000)
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save_snapshot(10, 1, _big_state(40))
    _corrupt(kv, "wraft:c:0:snap:1:1")
    with pytest.raises(DamagedStorage, match="snapshot .* damaged .*part 1"):
        reload(kv)
    kv.remove("wraft:c:0:snap:1:1")
    with pytest.raises(DamagedStorage, match="missing"):
        reload(kv)


def test_installed_snapshot_discards_the_whole_log():
    kv = _three_records(commit=2)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save_snapshot(20, 3, {"from": "leader"}, discard_log=True)
    log.set_hard_state(3, None, 20)
    assert not [k for k in kv.keys() if ":log:" in k]
    log.save(21, entries(21, 2, term=3), term=3, vote=None, commit=21)
    r = reload(kv)
    assert r.snapshot == (20, 3, {"from": "leader"}) and r.entries == entries(21, 2, term=3)
    assert log.last_index == 22


def test_storage_stays_bounded_through_many_compactions():
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    peak = 0
    for batch in range(200):
        first = batch * 50 + 1
        log.save(first, entries(first, 50), term=1, vote=0, commit=first + 49)
        if batch % 10 == 9:
            log.save_snapshot(first + 49, 1, {"kv": [["k%d" % i, batch] for i in range(20)]})
        peak = max(peak, log.bytes_used())
    assert peak < 40000, peak          # ~10 batches of log + one snapshot, not 10,000 entries
    r = reload(kv)
    assert r.first_index == 10001 and r.entries == [] and r.snapshot[0] == 10000


def test_crash_after_installed_snapshot_switch_voids_the_old_log():
    """An installed snapshot replaces the whole log; a crash after its
    manifest switch but before the old records are removed must not bring
    the old (possibly conflicting) entries back."""
    class CrashOnRemove(MemoryKV):
        armed = False

        def remove(self, key):
            if self.armed and ":log:" in key:
                raise RuntimeError("crash")
            super().remove(key)
    kv = CrashOnRemove()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 4), term=1, vote=0, commit=0)
    log.save(5, entries(5, 30, term=1), term=1, vote=0, commit=2)   # old, past index 20
    kv.armed = True
    with pytest.raises(RuntimeError):
        log.save_snapshot(20, 3, {"from": "leader"}, discard_log=True)
    kv.armed = False
    log = RecordLog(kv, "c", 0)
    r = log.load()
    assert r.snapshot == (20, 3, {"from": "leader"}) and r.entries == [] and r.first_index == 21
    assert not [k for k in kv.keys() if ":log:" in k]
    # records written after the switch carry its generation and survive a reload
    log.save(21, entries(21, 2, term=3), term=3, vote=None, commit=21)
    assert reload(kv).entries == entries(21, 2, term=3)


def test_records_a_crash_left_below_the_snapshot_are_removed_at_load():
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save_snapshot(10, 1, {"n": 10})
    kv.set("wraft:c:0:log:1", encode_log_record(1, entries(1, 4)))   # as if removal was cut short
    r = reload(kv)
    assert r.snapshot[0] == 10 and r.entries == entries(11, 2)
    assert "wraft:c:0:log:1" not in kv.data


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_snapshot_records_run_unchanged_under_micropython():
    prog = """
import json
import records
records.MAX_RECORD_CHARS = 100
kv = records.MemoryKV()
log = records.RecordLog(kv, "kv", 1)
log.load()
log.save(1, [[1, i] for i in range(1, 11)], term=1, vote=None, commit=10)
state = {"sm": [["k%d" % i, "\\u00e9" * 20] for i in range(10)], "index": 8}
log.save_snapshot(8, 1, state)
r = records.RecordLog(kv, "kv", 1).load()
parts = len([k for k in kv.keys() if ":snap:" in k])
log.save_snapshot(12, 2, {"x": 1}, True)
r2 = records.RecordLog(kv, "kv", 1).load()
print("RESULT " + json.dumps([r.snapshot == (8, 1, state), r.entries, parts > 3,
                              list(r2.snapshot), r2.entries]))
"""
    result, out = run_records_in_micropython(prog)
    assert result == [True, [[1, 9], [1, 10]], True, [12, 2, {"x": 1}], []]
