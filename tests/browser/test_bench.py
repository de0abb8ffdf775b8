"""The bench page (pages/bench.html) and the runner's bookkeeping.

Browser tests run three bench windows on their own cluster and check that a
short run yields sane, self-consistent JSON. They assert no speed: figures
come from `python -m benchmarks`, never from tests.
"""

import json

import pytest

from wraft.cluster import Cluster, wait_until

MODES = ("rtt", "sequential", "pipelined")
FIELDS = ("mode", "count", "seconds", "per_s", "p50_ms", "p99_ms", "max_ms")


class Bench(Cluster):
    """Three bench windows (a wraft/cluster.py Cluster) and their wraftBench."""

    def __init__(self, browser, server, tag):
        super().__init__(browser, server, "/bench", tag=tag)
        self.open_all(wait_for="body[data-bench]")

    def leader(self):
        """One leader, and every channel up (the runs measure round trips)."""
        lead = super().leader(timeout=30)
        wait_until(lambda: all(len(self.status(i)["peers"]) == 2 for i in range(3)),
                   timeout=30, what="all channels up", describe=self.describe)
        return lead

    def run(self, i, options):
        return json.loads(self.pages[i].evaluate("o => wraftBench.run(o)", json.dumps(options)))


@pytest.fixture
def bench(browser, server):
    made = []

    def make(tag):
        made.append(Bench(browser, server, tag))
        return made[-1]
    yield make
    for b in made:
        b.close_all()


@pytest.mark.browser
def test_short_run_gives_consistent_json_on_the_page_and_to_automation(bench):
    b = bench("bench-sane")
    lead = b.leader()
    page = b.pages[lead]
    out = b.run(lead, {"duration_s": 0.5, "inflight": 16})
    assert "ok" in out, out
    r = out["ok"]
    assert r["role"] == "leader" and r["node"] == str(lead)
    assert r["runtime"] == "micropython"
    for mode in MODES:
        m = r[mode]
        assert set(FIELDS) <= set(m), (mode, m)
        assert m["mode"] == mode
        assert m["count"] > 0 and m["seconds"] > 0 and m["per_s"] > 0, m
        assert 0 <= m["p50_ms"] <= m["p99_ms"] <= m["max_ms"], m
        assert m["per_s"] == pytest.approx(m["count"] / m["seconds"], rel=0.01)
    seq, pip = r["sequential"], r["pipelined"]
    # One client wrote everything, and each write returns the Tally count
    # after it: the counts of a mode are consecutive and add up.
    assert seq["errors"] == 0 and pip["errors"] == 0
    # where a sequential write's time goes: the driver noted the first reply
    assert 0 < seq["to_first_ack_p50_ms"] <= seq["p99_ms"] and seq["after_ack_p50_ms"] >= 0
    assert "profile" not in seq  # not asked for
    assert seq["first_count"] == r["count_before"] + 1
    assert seq["last_count"] - seq["first_count"] + 1 == seq["count"]
    assert pip["first_count"] == seq["last_count"] + 1
    assert pip["last_count"] - pip["first_count"] + 1 == pip["count"]
    assert r["count_after"] == r["count_before"] + seq["count"] + pip["count"]
    assert pip["inflight"] == 16
    # The leader applied the last write at end_ms; every window gets there.
    assert pip["end_ms"] is not None and pip["end_ms"] >= pip["start_ms"]
    wait_until(lambda: all(b.state(i) == r["count_after"] for i in range(3)),
               what="all windows applied every bench write")
    for i in range(3):
        at = json.loads(b.pages[i].evaluate("i => wraftBench.appliedAt(i)", pip["last_index"]))
        assert at is not None
    # the same JSON is on the page, for people and scripts alike
    assert page.locator("body").get_attribute("data-bench") == "done"
    assert json.loads(page.locator("#results").text_content()) == r
    assert json.loads(page.evaluate("wraftBench.results()")) == r
    assert page.locator("#table tr").count() == 3


@pytest.mark.browser
def test_bad_options_are_refused_clearly_and_the_page_keeps_working(bench):
    b = bench("bench-bad")
    lead = b.leader()
    before = b.state(lead)
    # junk on the channel the bench pings share with Raft: dropped, counted
    other = b.pages[(lead + 1) % 3]
    for junk in ("~p", "~qabc", "~z1", "~p" + "9" * 20, ""):
        assert other.evaluate("([p, t]) => wraft.sendRaw(p, t)", [str(lead), junk]) is True
    for options, words in (({"duration_s": -1}, "duration_s"),
                           ({"duration_s": "3"}, "duration_s"),
                           ({"inflight": 0}, "inflight"),
                           ({"modes": ["fastest"]}, "modes"),
                           ({"modes": []}, "modes"),
                           ({"bogus": 1}, "unknown option"),
                           ([1, 2], "JSON object")):
        out = b.run(lead, options)
        assert "error" in out and words in out["error"], (options, out)
    out = json.loads(b.pages[lead].evaluate("wraftBench.run('not json')"))
    assert "error" in out
    assert b.state(lead) == before  # nothing ran
    assert b.pages[lead].locator("body").get_attribute("data-bench") == "idle"
    # a second run while one is going is refused; the first one completes. Both
    # start in one turn of the page, so the second always finds the first running
    # (two evaluate calls let a loaded machine finish the first in between).
    first, second = (json.loads(r) for r in b.pages[lead].evaluate(
        "([a, b]) => Promise.all([wraftBench.run(a), wraftBench.run(b)])",
        [json.dumps({"modes": ["sequential"], "duration_s": 1}),
         json.dumps({"modes": ["rtt"], "duration_s": 0.2})]))
    assert "already in progress" in second.get("error", ""), second
    assert first["ok"]["sequential"]["count"] > 0
    assert first["ok"]["side_dropped"] == 4
    assert first["ok"]["node_stats"]["dropped_malformed"] >= 1  # the empty one
    assert b.state(lead) == before + first["ok"]["sequential"]["count"]


@pytest.mark.browser
def test_a_follower_can_run_the_bench_too_and_says_so(bench):
    b = bench("bench-follower")
    lead = b.leader()
    follower = (lead + 1) % 3
    out = b.run(follower, {"modes": ["sequential"], "duration_s": 0.3})
    r = out["ok"]
    assert r["role"] == "follower" and r["leader"] == str(lead)
    assert r["sequential"]["count"] > 0
    wait_until(lambda: b.state(lead) == r["count_after"], what="leader applied the writes")


@pytest.mark.browser
def test_a_profiled_run_times_the_drivers_steps_on_the_leader_and_a_follower(bench):
    from raft.runtime.timings import LABELS
    b = bench("bench-profile")
    lead = b.leader()
    follower = b.pages[(lead + 1) % 3]
    assert follower.evaluate("wraftBench.profileStart()") is True
    out = b.run(lead, {"modes": ["sequential", "pipelined"], "duration_s": 0.3, "inflight": 8,
                       "profile": True})
    theirs = json.loads(follower.evaluate("wraftBench.profileStop()"))
    assert json.loads(follower.evaluate("wraftBench.profileStop()")) is None  # stopped
    r = out["ok"]
    for mode in ("sequential", "pipelined"):
        p, n = r[mode]["profile"], r[mode]["count"]
        assert set(p["ms"]) == set(LABELS) == set(p["calls"]) and p["wall_ms"] > 0
        assert p["calls"]["propose"] >= n and p["calls"]["drain"] > 0, p
        ms = p["ms"]
        assert ms["drain"] >= ms["persist"] + ms["send"] and ms["send"] >= ms["transport_send"]
        assert p["wall_ms"] >= ms["drain"]
    assert r["sequential"]["to_first_ack_p50_ms"] is not None
    # the follower only replicates: it steps messages and persists them
    assert theirs["calls"]["step"] > 0 and theirs["calls"]["persist"] > 0
    assert theirs["calls"]["propose"] == 0
    # instrumentation is off again: a plain run carries no profile
    again = b.run(lead, {"modes": ["sequential"], "duration_s": 0.2})["ok"]
    assert "profile" not in again["sequential"] and again["sequential"]["count"] > 0


@pytest.mark.browser
def test_the_js_floor_measures_both_exchanges_and_leaves_no_trace(bench):
    # benchmarks/js_floor.py: a second, plain-JS channel between two bench
    # windows; its localStorage keys go again, and Raft keeps working.
    from benchmarks import js_floor

    b = bench("floor")
    lead = b.leader()
    other = (lead + 1) % 3
    before = [b.pages[i].evaluate("() => Object.keys(localStorage).sort()") for i in (lead, other)]
    got = js_floor.floor(b.pages, lead, other, 0.3)
    assert set(got) == {"js_rtt_per_s", "js_write_rtt_per_s"}
    assert got["js_rtt_per_s"] > 0 and got["js_write_rtt_per_s"] > 0
    after = [b.pages[i].evaluate("() => Object.keys(localStorage).sort()") for i in (lead, other)]
    assert after == before
    assert b.pages[lead].evaluate("() => window.__floor") is None
    out = b.run(lead, {"modes": ["sequential"], "duration_s": 0.2})["ok"]
    assert out["sequential"]["count"] > 0


# ----- the runner's bookkeeping (plain CPython, no browser) -----

def _fake_run(rtt, seq, pip_all):
    mode = {"count": 10, "seconds": 1.0, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0}
    return {"rtt": dict(mode, per_s=rtt), "sequential": dict(mode, per_s=seq),
            "pipelined": dict(mode, per_s=pip_all, all_windows_per_s=pip_all),
            "storage_bytes": [100, 120, 90], "counts": [30, 30, 30]}


def test_runner_medians_and_targets():
    from benchmarks.__main__ import parse_args, summarize

    args = parse_args(["--quick"])
    runs = [_fake_run(1000, 850, 21000), _fake_run(1200, 700, 1000), _fake_run(1100, 900, 25000)]
    f = summarize(args, runs, {"mpy": [1.2, 2.0, 1.4], "py": []},
                  {"mpy": [3.0, 2.0, 2.2], "py": []}, None, "chromium", "Chromium 156 x3")
    assert f["rtt_baseline_per_s"] == 1100 and f["sequential_writes_per_s"] == 850
    assert f["pipelined_writes_per_s"] == 21000
    assert f["cold_start_first_commit_s"] == {"mpy": 1.4}
    assert f["failover_s"] == 2.2
    assert f["localstorage_bytes_after"] == 120 and f["localstorage_writes"] == 30
    t = f["targets"]
    assert f["seq_to_rtt_ratio"] == pytest.approx(0.818, abs=0.001)  # median of per-run ratios
    assert t["seq_to_rtt_ratio"]["met"] is True
    assert t["pipelined_writes_per_s"]["met"] is True
    assert t["cold_start_mpy_s"]["met"] is False  # 1.4 s > 1.0 s
    assert t["failover_close_s"]["met"] is False  # 2.2 s > 0.5 s
    # the same-run baselines: the core's own rate and a bare page's load
    f = summarize(args, runs, {"mpy": [1.2, 2.0, 1.4], "py": []}, {"mpy": [0.3], "py": []},
                  None, "chromium", "Chromium 156 x3", core={"mpy": 10000},
                  bare={"mpy": [1.0, 1.1, 1.2], "py": []}, silent={"mpy": [2.5], "py": []})
    assert f["pipelined_to_core_ratio"] == 2.1 and f["targets"]["pipelined_to_core_ratio"]["met"]
    assert f["cold_start_to_bare_ratio"] == pytest.approx(1.4 / 1.1, abs=0.001)
    assert f["failover_close_s"] == 0.3 and f["failover_silent_s"] == 2.5
    assert f["targets"]["failover_silent_s"]["met"] is True
    for key in ("sequential_writes_per_s", "rtt_baseline_per_s", "pipelined_writes_per_s",
                "commit_latency_p50_ms", "commit_latency_p99_ms", "cold_start_first_commit_s",
                "failover_s", "localstorage_bytes_after", "runtime", "browser", "browsers",
                "machine"):
        assert key in f
    assert f["machine"]["cores"] >= 1
    # the plain-JS floor beside each run: per-run ratios, then the median
    for r, floor in zip(runs, (1000, 1000, 1800)):
        r["floor"] = {"js_rtt_per_s": 2 * floor, "js_write_rtt_per_s": floor}
    runs.append(dict(_fake_run(1000, 500, 1), floor={"error": "no channel"}))
    f = summarize(args, runs, {"mpy": [], "py": []}, {"mpy": [], "py": []}, None, "chromium", "x")
    assert f["seq_to_floor_ratio"] == pytest.approx(0.7, abs=0.001)  # of 0.85, 0.7, 0.5
    assert f["js_write_rtt_per_s"] == 1000 and f["rtt_to_js_rtt_ratio"] == pytest.approx(0.5)


def test_runner_refuses_bad_arguments(capsys):
    from benchmarks.__main__ import parse_args

    for argv in (["--repeats", "0"], ["--duration", "-1"], ["--inflight", "0"],
                 ["--runtime", "ruby"], ["--browser", "safari"], ["--browser", "firefox,"],
                 ["--browser", "mixed,opera"]):
        with pytest.raises(SystemExit) as e:
            parse_args(argv)
        assert e.value.code == 2
    assert "error" in capsys.readouterr().err
    assert parse_args(["--browser", "chromium,firefox,mixed"]).browsers == [
        "chromium", "firefox", "mixed"]


def test_the_edge_benchmark_sends_and_stores_what_the_plain_encoding_would():
    # benchmarks/edge.py times the driver's real send and persist: the same
    # wire text as codec.encode of each message (no figure is asserted).
    from benchmarks.edge import run
    from raft import codec

    r = run(batches=3, batch=4)
    assert r["entries"] == 12 and r["batch"] == 4 and r["cpu_s"] >= 0
    ents = [[1, "c%07d" % (i % 97), i, ["put", "key%d" % (i % 50), i]] for i in range(12)]
    want = sum(len(codec.encode(["a", "n0", p, 1, f - 1, 1 if f > 1 else 0, ents[f - 1:f + 3],
                                 f - 1])) for f in (1, 5, 9) for p in ("n1", "n2"))
    assert r["wire_chars"] == want
