"""Record format and recovery of the durable log (raft/records.py), in CPython."""

import json
import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from raft.codec import compact
from raft.records import (
    DamagedStorage, MemoryKV, RecordCorrupt, RecordLog, StorageFull,
    decode_log_record, encode_hard_state, encode_log_record, namespace, seal, split_batch, unseal,
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
    assert kv.sets == 2  # one record for 100 entries + the new term and vote
    log.save(None, None, term=1, vote=0, commit=0)
    assert kv.sets == 2
    log.save(101, entries(101, 50), term=1, vote=0, commit=120)
    assert kv.sets == 3  # the record carries the new commit index: one write
    log.save(None, None, term=1, vote=0, commit=150)     # only the hard state changed
    assert kv.sets == 4
    r = reload(kv)
    assert r.entries == entries(1, 150) and (r.term, r.vote, r.commit) == (1, 0, 150)


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


def test_a_log_record_is_spliced_around_its_entries_text_byte_for_byte():
    # encode_log_record builds the record around the entries' JSON text (the
    # one encoding of a batch): the same text seal() makes of the record.
    batch = [[2, "c1", 1, {"op": "put", "k": "caf\u00e9"}], [2, None, 0, None]]
    for gen, w, hard in ((0, 0, None), (3, 0, None), (0, 7, (2, "n1", 4)), (5, 9, (2, None, 0))):
        obj = {"v": 1, "f": 12, "e": batch}
        if gen:
            obj["g"] = gen
        if w:
            obj["w"], obj["h"] = w, list(hard)
        assert encode_log_record(12, batch, gen, w, hard) == seal(obj)
        assert encode_log_record(12, batch, gen, w, hard, compact(batch)) == seal(obj)
    assert decode_log_record(encode_log_record(12, batch, 3, 7, (2, "n1", 4)), 12) == batch


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


@pytest.mark.parametrize("commit,key", [(6, "log:9"), (10, "log:9"), (6, "log:5"), (0, "log:1")])
def test_damaged_record_is_refused_even_past_the_commit_index_and_left_untouched(commit, key):
    # The local commit index may lag what the cluster committed: entries past
    # it may have been acknowledged. Nothing is dropped; the reason is clear.
    kv = _three_records(commit=commit)
    _corrupt(kv, "wraft:c:0:" + key)
    before = dict(kv.data)
    with pytest.raises(DamagedStorage, match="wraft:c:0:%s is damaged .*acknowledged.*refusing" % key):
        reload(kv)
    assert kv.data == before  # refusing to start destroys nothing


@pytest.mark.parametrize("commit", [3, 5])
def test_missing_record_is_refused(commit):
    kv = _three_records(commit=commit)
    del kv.data["wraft:c:0:log:5"]
    before = dict(kv.data)
    with pytest.raises(DamagedStorage, match="entries 5..8 are missing"):
        reload(kv)
    assert kv.data == before


def test_missing_last_record_is_seen_and_refused():
    kv = _three_records(commit=3)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(term=1, vote=0, commit=10)       # the hard-state key knows the log reached 12
    del kv.data["wraft:c:0:log:9"]
    with pytest.raises(DamagedStorage, match="ends at index 8 but its last write stored entries up to 12"):
        reload(kv)


def test_record_under_the_wrong_key_is_corrupt():
    kv = _three_records(commit=0)
    kv.data["wraft:c:0:log:9"] = encode_log_record(10, entries(10, 3))
    with pytest.raises(DamagedStorage, match="does not match its key"):
        reload(kv)
    with pytest.raises(RecordCorrupt):
        decode_log_record(encode_log_record(1, []), 1)


def test_stray_keys_are_ignored_and_never_delete_valid_records():
    kv = _three_records(commit=2)
    strays = {"wraft:c:0:log:0006": encode_log_record(6, entries(6, 1, term=9)),
              "wraft:c:0:log:06": "deadbeef[1]", "wraft:c:0:log:x": "x",
              "wraft:c:0:log:": "", "wraft:c:0:other": "?", "wraft:c:0:snap:": "junk"}
    kv.data.update(strays)
    r = reload(kv)
    assert r.entries == entries(1, 12) and r.repaired is None
    for k in strays:
        if k != "wraft:c:0:snap:":       # a part of no snapshot generation: an orphan
            assert kv.data[k] == strays[k]


def test_stale_records_of_an_interrupted_truncation_are_removed_at_load():
    kv = _three_records(commit=2)
    before = dict(kv.data)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(3, entries(3, 2, term=2), term=2, vote=None, commit=2)   # replaces 3..12 with 3..4
    # as if the crash came right after the new record: the old ones are back
    for k in ("wraft:c:0:log:5", "wraft:c:0:log:9"):
        kv.data[k] = before[k]
    r = reload(kv)
    assert r.entries == entries(1, 2) + entries(3, 2, term=2) and r.term == 2
    assert "interrupted" in r.repaired and "2 stale" in r.repaired
    assert sorted(k for k in kv.keys() if ":log:" in k) == ["wraft:c:0:log:1"]


def test_damaged_record_wholly_covered_by_the_snapshot_is_removed():
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(snapshot=[8, 1, {"n": 8}])
    kv.data["wraft:c:0:log:1"] = "deadbeef[]"     # a covered record a crash left, damaged
    r = reload(kv)
    assert r.first_index == 9 and r.entries == entries(9, 4)
    assert "wraft:c:0:log:1" not in kv.data


def test_damaged_hard_state_or_commit_beyond_log_is_refused():
    kv = _three_records(commit=2)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(term=2, vote=1, commit=2)
    _corrupt(kv, "wraft:c:0:hard")
    with pytest.raises(DamagedStorage, match="term/vote record"):
        reload(kv)
    kv = MemoryKV()
    kv.data["wraft:c:0:hard"] = encode_hard_state(1, None, 12)
    kv.data["wraft:c:0:log:1"] = encode_log_record(1, entries(1, 4))
    with pytest.raises(DamagedStorage, match="commit index 12 is beyond"):
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
    log.save(snapshot=[6, 1, {"count": 6}])
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
    files = dict((name, open(os.path.join(ROOT, "raft", name)).read())
                 for name in ("records.py", "codec.py", "membership.py"))
    files["__init__.py"] = ""                 # records and what it imports, nothing more
    script = """
import { loadMicroPython } from %s;
const mp = await loadMicroPython({stdout: (s) => console.log(s)});
mp.FS.mkdir('/lib'); mp.FS.mkdir('/lib/raft');
for (const [name, src] of Object.entries(%s)) mp.FS.writeFile('/lib/raft/' + name, src);
mp.runPython("import sys; sys.path.append('/lib')");
mp.runPython("from raft import records");
mp.runPython(%s);
""" % (json.dumps("file://" + mjs), json.dumps(files), json.dumps(prog))
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout + out.stderr
    return json.loads(line[0][7:]), out


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_records_run_unchanged_under_micropython():
    prog = """
from raft import records
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


def test_overlapping_record_is_refused():
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 4), term=1, vote=0, commit=2)
    kv.set("wraft:c:0:log:3", encode_log_record(3, entries(3, 3, term=9), w=99, hard=[9, None, 2]))
    with pytest.raises(DamagedStorage, match="log:3 overlaps"):
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
    log.save(snapshot=[10, 1, state])
    parts = [k for k in kv.keys() if ":snap:" in k]
    assert len(parts) > 5
    r = reload(kv)
    assert r.snapshot == (10, 1, state) and r.entries == entries(11, 2)
    # a second snapshot replaces the first: old parts are gone
    log.save(13, entries(13, 3), term=1, vote=0, commit=15)
    log.save(snapshot=[15, 1, _big_state(3)])
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
        log.save(snapshot=[4, 1, {"old": 1}])
        before = dict(kv.data)
        kv.__class__ = FailingKV
        kv.fail_at, kv.sets = fail_at, 0
        with pytest.raises(StorageFull):
            log.save(snapshot=[10, 1, _big_state(60)])   # parts..., then the manifest
        kv.__class__ = MemoryKV
        assert kv.data == before          # nothing half-written is left
        r = reload(kv)
        assert r.snapshot == (4, 1, {"old": 1}) and r.entries == entries(5, 8)


def test_orphan_parts_of_an_unfinished_write_are_removed_at_load():
    kv = _three_records(commit=10)
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(snapshot=[6, 1, {"x": 1}])
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
    log.save(snapshot=[10, 1, _big_state(40)])
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
    log.save(snapshot=[20, 3, {"from": "leader"}], discard_log=True)
    log.save(term=3, vote=None, commit=20)
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
            log.save(snapshot=[first + 49, 1, {"kv": [["k%d" % i, batch] for i in range(20)]}])
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
        log.save(snapshot=[20, 3, {"from": "leader"}], discard_log=True)
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
    log.save(snapshot=[10, 1, {"n": 10}])
    kv.set("wraft:c:0:log:1", encode_log_record(1, entries(1, 4)))   # as if removal was cut short
    r = reload(kv)
    assert r.snapshot[0] == 10 and r.entries == entries(11, 2)
    assert "wraft:c:0:log:1" not in kv.data


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_snapshot_records_run_unchanged_under_micropython():
    prog = """
import json
from raft import records
records.MAX_RECORD_CHARS = 100
kv = records.MemoryKV()
log = records.RecordLog(kv, "kv", 1)
log.load()
log.save(1, [[1, i] for i in range(1, 11)], term=1, vote=None, commit=10)
state = {"sm": [["k%d" % i, "\\u00e9" * 20] for i in range(10)], "index": 8}
log.save(snapshot=[8, 1, state])
r = records.RecordLog(kv, "kv", 1).load()
parts = len([k for k in kv.keys() if ":snap:" in k])
log.save(snapshot=[12, 2, {"x": 1}], discard_log=True)
r2 = records.RecordLog(kv, "kv", 1).load()
print("RESULT " + json.dumps([r.snapshot == (8, 1, state), r.entries, parts > 3,
                              list(r2.snapshot), r2.entries]))
"""
    result, out = run_records_in_micropython(prog)
    assert result == [True, [[1, 9], [1, 10]], True, [12, 2, {"x": 1}], []]


# ------------------------------------------------------------------ atomic persist (issue 10, bug 3)
class Crash(Exception):
    pass


class CrashingKV(MemoryKV):
    """Dies at its n-th change (set or remove): a crash or a closed tab mid-persist."""

    def __init__(self, data, crash_at):
        super().__init__()
        self.data = dict(data)
        self.crash_at = crash_at
        self.changes = 0

    def _change(self):
        self.changes += 1
        if self.changes == self.crash_at:
            raise Crash()

    def set(self, key, value):
        self._change()
        super().set(key, value)

    def remove(self, key):
        self._change()
        super().remove(key)


def _driver_for(node, log):
    from raft.runtime.driver import Driver
    return Driver(node, log, None, lambda: 0, 3)


def _loaded(kv, nid):
    """What a restarted page finds: (restored, a Node built from it)."""
    from raft.runtime.driver import node_storage
    from raft import Node
    r = RecordLog(MemoryKV(), "c", nid)
    r.kv.data = dict(kv.data)
    restored = r.load()
    node = Node(nid, ["a", "b", "c"], None, None, None, node_storage(restored), 0)
    return restored, node


def _state(r):
    return (r.term, r.vote, r.snapshot[0] if r.snapshot else 0, r.entries)


def _crash_at_every_change(kv, nid, node, step, prefix_ok=False):
    """Persist the Ready that step(node) causes, crashing at each change of
    the store in turn (then once with a full quota at each write); after
    every crash a restarted node starts and finds the old or the new state
    (or, for a batch split over records, a prefix of it with its hard state)."""
    from raft.runtime.driver import node_storage
    from raft import Node
    old = _state(_loaded(kv, nid)[0])
    before = dict(kv.data)
    step(node)
    rd = node.ready()
    clean = CrashingKV(before, 0)
    log = RecordLog(clean, "c", nid)
    log.load()
    assert _driver_for(node, log).persist(rd)
    new = _state(_loaded(clean, nid)[0])
    assert new != old
    for crash_at in range(1, clean.changes + 2):
        for how in ("crash", "full"):
            kv2 = CrashingKV(before, crash_at if how == "crash" else 0)
            log = RecordLog(kv2, "c", nid)
            log.load()
            if how == "full":
                n = [0]

                def full_at(key, value, n=n, at=crash_at, orig=kv2.set):
                    n[0] += 1
                    if n[0] >= at:
                        raise StorageFull("quota")
                    orig(key, value)
                kv2.set = full_at
                assert _driver_for(node, log).persist(rd) in (True, False)
            else:
                try:
                    _driver_for(node, log).persist(rd)
                except Crash:
                    pass
            restored, again = _loaded(kv2, nid)           # must not raise
            got = _state(restored)
            if got != old and got != new:
                assert prefix_ok, (how, crash_at, got, old, new)
                assert got[:3] == new[:3] and new[3][:len(got[3])] == got[3], (how, crash_at, got)
            assert restored.commit <= restored.last_index
    return clean.changes


def _follower(kv, nid="b", entries_=(), hs=(1, None, 1)):
    from raft.runtime.driver import node_storage
    from raft import Node
    log = RecordLog(kv, "c", nid)
    log.load()
    log.save(1, list(entries_), *hs) if entries_ else log.save(term=hs[0], vote=hs[1], commit=hs[2])
    return Node(nid, ["a", "b", "c"], None, None, None, node_storage(RecordLog(kv, "c", nid).load()), 0)


def test_crash_anywhere_in_a_persist_of_a_new_term_and_its_entry_restarts_cleanly():
    # A follower first hears of term 2 through an AppendEntries carrying an
    # entry of term 2: one Ready with both. Before the fix the entries were
    # stored first; a crash (or StorageFull) before the hard state left an
    # entry newer than the stored term, and Node() refused to start.
    kv = MemoryKV()
    node = _follower(kv, entries_=[[1, None, 0, None], [1, "x", 1, ["put", "k", 1]]])
    _crash_at_every_change(kv, "b", node, lambda n: n.step(
        ["a", "a", "b", 2, 2, 1, [[2, None, 0, None], [2, "x", 2, ["put", "k", 2]]], 3]))


def test_crash_anywhere_in_a_persist_that_truncates_a_conflicting_tail_restarts_cleanly():
    kv = MemoryKV()
    node = _follower(kv, entries_=[[1, None, 0, None]], hs=(1, None, 1))
    log = RecordLog(kv, "c", "b")
    log.load()
    for first in (2, 4, 6):        # three records of an old leader's uncommitted entries
        log.save(first, [[1, "x", i, ["put", "k", i]] for i in range(first, first + 2)])
    from raft.runtime.driver import node_storage
    from raft import Node
    node = Node("b", ["a", "b", "c"], None, None, None, node_storage(RecordLog(kv, "c", "b").load()), 0)
    assert node.last_index() == 7
    _crash_at_every_change(kv, "b", node, lambda n: n.step(
        ["a", "c", "b", 3, 1, 1, [[3, None, 0, None]], 2]))


def test_crash_anywhere_in_a_persist_of_an_installed_snapshot_restarts_cleanly():
    kv = MemoryKV()
    node = _follower(kv, entries_=[[1, None, 0, None], [1, "x", 1, ["put", "k", 1]]])
    data = json.dumps({"sm": [["k", 5]], "sessions": [], "index": 5,
                       "config": {"voters": ["a", "b", "c"], "learners": []}})
    _crash_at_every_change(kv, "b", node, lambda n: n.step(["s", "a", "b", 3, 5, 2, 0, data, 1]))


def test_crash_anywhere_in_a_persist_of_a_batch_split_over_records(monkeypatch):
    import raft.records as rec
    monkeypatch.setattr(rec, "MAX_RECORD_CHARS", 200)
    kv = MemoryKV()
    node = _follower(kv, entries_=[[1, None, 0, None]])
    batch = [[2, "x", i, ["put", "k", "v" * 40]] for i in range(1, 12)]
    _crash_at_every_change(kv, "b", node, lambda n: n.step(["a", "a", "b", 2, 1, 1, batch, 12]),
                           prefix_ok=True)


# ------------------------------------------------------------------ a snapshot that does not fit
def _log_with_snapshot_due():
    """40 entries of ~110 chars after a small snapshot at 10; a snapshot at
    40 of ~3,000 chars is due (both the snapshot and the log are big)."""
    kv = MemoryKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, [[1, "c", i, "v" * 90] for i in range(1, 41)], term=1, vote=None, commit=40)
    log.save(snapshot=[10, 1, {"sm": [], "sessions": [], "index": 10}])
    return kv, log, {"sm": "s" * 3000}


def test_snapshot_that_does_not_fit_beside_its_log_is_refused_with_the_reason_on_a_follower():
    kv, log, state = _log_with_snapshot_due()
    kv.quota = kv.used() + 2000                  # fits only once the covered log is gone
    before = dict(kv.data)
    with pytest.raises(StorageFull, match="cannot drop that log first: it may hold entries it acknowledged"):
        log.save(snapshot=[40, 1, state])
    assert kv.data == before
    r = reload(kv)
    assert r.snapshot[0] == 10 and len(r.entries) == 30


def test_leader_makes_room_for_its_snapshot_by_dropping_the_covered_log_first():
    kv, log, state = _log_with_snapshot_due()
    kv.quota = kv.used() + 2000
    log.save(snapshot=[40, 1, state], log_elsewhere=True)
    r = reload(kv)
    assert r.snapshot == (40, 1, state) and r.entries == [] and r.repaired is None
    log.save(41, [[1, "x"]], term=1, vote=None, commit=41)   # and it goes on
    assert reload(kv).entries == [[1, "x"]]


@pytest.mark.parametrize("crash_at", list(range(1, 12)) + [99])
def test_leader_out_of_room_even_without_its_log_starts_again_from_the_older_snapshot(crash_at):
    from raft.runtime.driver import node_storage
    from raft import Node
    kv, log, _ = _log_with_snapshot_due()
    full = reload(kv).entries
    kv.quota = kv.used() + 100                   # the marker fits, a 6,000-char snapshot never
    kv.__class__ = CrashingKV
    kv.crash_at, kv.changes = crash_at, 0        # a crash at each step of making room
    with pytest.raises((StorageFull, Crash)):
        log.save(snapshot=[40, 1, {"sm": "s" * 6000}], log_elsewhere=True)
    kv.__class__ = MemoryKV
    r = reload(kv)
    assert r.snapshot[0] == 10
    if r.entries:                                # crashed before the log was given up
        assert r.entries == full and r.commit == 40 and r.repaired is None
    else:
        assert r.commit == 10 and "started again from the snapshot at index 10" in r.repaired
    assert crash_at < 99 or not r.entries
    Node("0", ["0", "1", "2"], None, None, None, node_storage(r), 0)   # starts


# ------------------------------------------------------------------ lazy commit (issue 13)
def test_lazy_commit_defers_a_commit_only_save_until_flush_commit():
    # The browser's log (lazy_commit=True): a Ready that only moves the
    # commit index writes nothing; the driver's next tick stores it. Until
    # then a restart finds the older commit, which is safe (the commit index
    # is volatile in Raft; the node re-applies and learns it again).
    kv = CountingKV()
    log = RecordLog(kv, "c", 0, lazy_commit=True)
    log.load()
    log.save(1, entries(1, 3), term=2, vote=1, commit=1)
    sets = kv.sets
    log.save(term=2, vote=1, commit=3)                       # commit only
    assert kv.sets == sets and log.commit_due == (2, 1, 3)
    r = reload(kv)
    assert (r.term, r.vote, r.commit) == (2, 1, 1)
    log.flush_commit()
    assert kv.sets == sets + 1 and log.commit_due is None
    assert reload(kv).commit == 3
    log.flush_commit()                                         # nothing due: no write
    assert kv.sets == sets + 1


def test_lazy_commit_rides_in_the_next_entries_record():
    kv = CountingKV()
    log = RecordLog(kv, "c", 0, lazy_commit=True)
    log.load()
    log.save(1, entries(1, 2), term=1, vote=None, commit=0)
    log.save(term=1, vote=None, commit=2)
    sets = kv.sets
    log.save(3, entries(3, 1))                                 # hard state unchanged
    assert kv.sets == sets + 1 and log.commit_due is None     # one record, commit 2 in it
    r = reload(kv)
    assert (r.commit, len(r.entries)) == (2, 3)


def test_lazy_commit_never_defers_a_term_or_vote():
    kv = CountingKV()
    log = RecordLog(kv, "c", 0, lazy_commit=True)
    log.load()
    log.save(1, entries(1, 2), term=1, vote=None, commit=2)
    for term, vote, commit in ((1, 2, 2), (3, None, 2), (3, None, 2)):
        log.save(term=term, vote=vote, commit=commit)
        assert log.commit_due is None
        r = reload(kv)
        assert (r.term, r.vote) == (term, vote)
    log.save(term=3, vote=None, commit=2)
    assert log.commit_due is None       # nothing moved at all


def test_without_lazy_commit_every_commit_is_written_at_once():
    kv = CountingKV()
    log = RecordLog(kv, "c", 0)
    log.load()
    log.save(1, entries(1, 2), term=1, vote=None, commit=0)
    log.save(term=1, vote=None, commit=2)
    assert log.commit_due is None and reload(kv).commit == 2

