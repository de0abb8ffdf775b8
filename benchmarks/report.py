"""The runner's HTML report (benchmarks/results/latest.html): one
self-contained page, inline SVG, no scripts or external files, drawn from
the figures `python -m benchmarks` writes to latest.json.

    write_report(figures, path) -> path
    python -m benchmarks.report [latest.json]   # redraw from a saved run
"""

import html
import json
import sys
from pathlib import Path

W, H = 560, 180  # chart size (px)


def _bars(title, labels, values, unit=""):
    """A bar chart: one bar per label."""
    if not values:
        return ""
    top = max(values) or 1
    bw = W / max(1, len(values))
    out = ['<figure><figcaption>%s</figcaption><svg width="%d" height="%d" role="img">'
           % (html.escape(title), W, H + 34)]
    for i, (label, v) in enumerate(zip(labels, values)):
        h = H * v / top
        x = i * bw
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#3a7bd5">'
                   '<title>%s: %s%s</title></rect>' % (x + 1, H - h, bw - 2, h,
                                                       html.escape(label), v, unit))
        if v:
            out.append('<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>'
                       % (x + bw / 2, H - h - 2, v))
        out.append('<text x="%.1f" y="%d" font-size="9" text-anchor="middle">%s</text>'
                   % (x + bw / 2, H + 14, html.escape(label)))
    out.append("</svg></figure>")
    return "".join(out)


def _line(title, points, xlabel, ylabel):
    """A line chart of [(x, y)] (x ascending)."""
    if len(points) < 2:
        return ""
    x0, x1 = points[0][0], points[-1][0]
    top = max(y for _, y in points) or 1
    span = (x1 - x0) or 1
    path = " ".join("%.1f,%.1f" % (40 + (W - 50) * (x - x0) / span, H - H * y / top)
                    for x, y in points)
    return ('<figure><figcaption>%s</figcaption><svg width="%d" height="%d" role="img">'
            '<polyline fill="none" stroke="#3a7bd5" stroke-width="1.5" points="%s"/>'
            '<text x="0" y="10" font-size="9">%s</text><text x="0" y="%d" font-size="9">0</text>'
            '<text x="%d" y="%d" font-size="9" text-anchor="end">%s</text></svg></figure>'
            % (html.escape(title), W, H + 20, path, "%.0f %s" % (top, ylabel), H,
               W, H + 16, html.escape(xlabel)))


def _timeline(title, windows):
    """One row per window: its marks (s from its navigation start) as segments."""
    if not windows:
        return ""
    end = max(max(m.values()) for m in windows if m) or 1
    rows = ['<figure><figcaption>%s</figcaption><svg width="%d" height="%d" role="img">'
            % (html.escape(title), W, 30 * len(windows) + 20)]
    colors = ["#9ecae1", "#3a7bd5", "#08519c", "#2ca02c"]
    for i, marks in enumerate(windows):
        y = 10 + 30 * i
        prev, prev_name = 0.0, "navigation"
        for k, (name, t) in enumerate(sorted(marks.items(), key=lambda kv: kv[1])):
            x0, x1 = 60 + (W - 70) * prev / end, 60 + (W - 70) * t / end
            rows.append('<rect x="%.1f" y="%d" width="%.1f" height="18" fill="%s">'
                        '<title>%s -> %s: %.3f s</title></rect>'
                        % (x0, y, max(1, x1 - x0), colors[k % len(colors)],
                           html.escape(prev_name), html.escape(name), t - prev))
            prev, prev_name = t, name
        rows.append('<text x="0" y="%d" font-size="10">window %d</text>' % (y + 13, i))
    rows.append('<text x="%d" y="%d" font-size="9" text-anchor="end">%.2f s</text></svg>'
                '</figure>' % (W, 30 * len(windows) + 16, end))
    return "".join(rows)


def _hist(title, hist):
    if not hist:
        return ""
    labels = ["<=%s" % b if b is not None else "more" for b, _ in hist]
    return _bars(title + " (writes per latency bucket, ms)", labels, [n for _, n in hist])


def _throughput(timeline, bin_ms=100):
    """[(s, writes/s)] from [applied index, ms] samples, in bins of bin_ms."""
    if len(timeline) < 2:
        return []
    t0 = timeline[0][1]
    bins = {}
    last = timeline[0][0]
    for index, t in timeline[1:]:
        k = int((t - t0) // bin_ms)
        bins[k] = bins.get(k, 0) + max(0, index - last)
        last = index
    return [(k * bin_ms / 1000, n * 1000 / bin_ms) for k, n in sorted(bins.items())]


def render(f):
    esc = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>WRaft "
             "benchmarks</title><style>body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
             "figure{display:inline-block;margin:8px 16px 8px 0}figcaption{font-weight:600}"
             "</style></head><body><h1>WRaft benchmarks</h1>",
             "<p>%s; Chromium %s; %s cores; load average %s; command <code>%s</code></p>"
             % (esc(f.get("when", "")), esc(str(f.get("browsers") or f.get("chromium_version"))),
                f.get("machine", {}).get("cores"),
                esc(", ".join("%.1f" % x for x in f.get("load_average", []))),
                esc(f.get("command", "")))]
    parts.append("<table><tr><th>goal</th><th>value</th><th>target</th><th>met</th></tr>")
    for key, t in f.get("targets", {}).items():
        parts.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            esc(key), esc(str(t["value"])), esc(t["target"]),
            {True: "yes", False: "no", None: "n/a"}[t["met"]]))
    parts.append("</table>")
    runs = f.get("runs", {}).get("bench") or []
    if runs:
        r = runs[0]
        for mode in ("sequential", "pipelined", "batched"):
            if r.get(mode, {}).get("hist_ms"):
                parts.append(_hist("%s latency, first cluster" % mode, r[mode]["hist_ms"]))
        parts.append(_line("applied writes per second at the leader over the run (100 ms bins)",
                           _throughput(r.get("timeline") or []), "seconds", "writes/s"))
    b = f.get("cold_start_breakdown_mpy_s") or {}
    if b.get("window_runtime_up_s"):
        windows = []
        for i, up in enumerate(b["window_runtime_up_s"]):
            marks = {"runtime up, our script starts": up,
                     "node started": b["window_script_done_s"][i]}
            if b.get("first_commit_from_navigation_s") and i == 0:
                marks["first commit"] = b["first_commit_from_navigation_s"]
            windows.append(marks)
        parts.append(_timeline("cold start per window (s from its navigation start)", windows))
    cold = f.get("runs", {}).get("cold_start_s", {}).get("mpy") or []
    bare = f.get("runs", {}).get("bare_page_load_s", {}).get("mpy") or []
    if cold or bare:
        parts.append(_bars("cold start (s): bare pages, then our pages, each run",
                           ["bare %d" % i for i in range(len(bare))]
                           + ["app %d" % i for i in range(len(cold))],
                           [round(x, 2) for x in bare + cold], " s"))
    parts.append("<details><summary>all figures (latest.json)</summary><pre>%s</pre></details>"
                 % esc(json.dumps({k: v for k, v in f.items() if k != "runs"}, indent=1)))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(figures, path):
    path = Path(path)
    path.write_text(render(figures))
    return path


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else
               Path(__file__).resolve().parent / "results" / "latest.json")
    print(write_report(json.loads(src.read_text()), src.with_suffix(".html")))
