"""The status panel's picture of the cluster: an SVG drawn from the runtime's
status() dict, in the spirit of raftscope, plus the one-sentence summary the
panel puts in its aria-live region.

One row per member, voters first, then learners, then the client windows:
a circle with the node id (filled by role, a star and a thick ring on the
leader, dashed when this window has no news of it), its role and term where
this window knows them, and its log as a bar: this window's log from its
snapshot to its last index with the commit and applied marks; on the leader,
each follower's match index and whether it answered lately. The election
timer of this window, when it is a follower or candidate, is a ring around
its circle that drains towards the next election (SMIL animation, so it
moves between redraws). Every member row is a focusable list item with an
aria-label and a tooltip; its details show on focus or hover.

Only what this window knows is drawn: a follower does not know the other
followers' logs or terms, so their bars are empty and their role reads
"voter". Everything here is pure (tested in CPython).
"""

from html import escape

from raft.browser.status_html import id_order, page_role, voter_count

WIDTH = 520
ROW = 46
TOP = 22
BAR_X = 250
BAR_W = 250
MIN_SPAN = 20  # the bars span at least 20 indexes (a short log grows along them)
RING_R = 17.0
RING_LEN = 106.8  # 2 * pi * RING_R
COLORS = {"leader": "#1a7f37", "candidate": "#bf8700", "follower": "#0969da",
          "learner": "#8250df", "offline": "#8c959f", "client": "#57606a", "unknown": "#afb8c1"}


def _esc(text):
    return escape(str(text))


def _plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def rows_of(info):
    """One dict per member as this window sees it: id, kind (voter/learner),
    role, term (None if unknown), contact ("this window", "live", "not heard
    from", "connected", "not connected"), and the indexes it knows: last,
    match, commit, applied, snapshot (None when unknown)."""
    me = info.get("node")
    leader = info.get("leader")
    role = page_role(info)
    term = info.get("term")
    voters = info.get("voters")
    if voters is None:  # before the membership is known: the bootstrap size
        voters = [me] if me is not None else []
    learners = info.get("learners") or []
    peers = info.get("peers") or []
    progress = info.get("peer_status")  # only on the leader
    out = []
    for kind, ids in (("voter", voters), ("learner", learners)):
        for node_id in sorted(ids, key=id_order):
            row = {"id": node_id, "kind": kind, "role": None, "term": None, "contact": None,
                   "last": None, "match": None, "commit": None, "applied": None,
                   "snapshot": None, "me": node_id == me, "leader": node_id == leader}
            if node_id == me:
                row.update(role=role, term=term, contact="this window",
                           last=info.get("last_index"), commit=info.get("commit"),
                           applied=info.get("applied"), snapshot=info.get("snapshot_index"))
            elif progress is not None:
                p = progress.get(node_id)
                if p is not None:
                    row["match"] = p.get("match")
                    row["contact"] = "live" if p.get("recent") else "not heard from"
                    if p.get("recent"):  # it answered this term's leader lately
                        row.update(role="follower", term=term)
                else:
                    row["contact"] = "unknown"
            else:
                row["contact"] = "connected" if node_id in peers else "not connected"
                if node_id == leader and role != "offline":
                    row.update(role="leader", term=term)  # the leader this window follows
            out.append(row)
    return out


def _span(rows):
    """(lo, hi) of the log indexes the bars cover."""
    known = [r[k] for r in rows for k in ("last", "match", "commit", "applied")
             if r[k] is not None]
    if not known:
        return 0, MIN_SPAN
    hi = max(known)
    lo = max(0, min(min(known), hi - MIN_SPAN))
    return lo, max(hi, lo + MIN_SPAN)


def _x(index, span):
    lo, hi = span
    return BAR_X + BAR_W * (min(max(index, lo), hi) - lo) / (hi - lo)


def role_text(row):
    if row["role"] is not None:
        text = row["role"]
        if row["kind"] == "learner" and text not in ("offline",):
            text = "learner, " + text
        return text
    return row["kind"]


def detail_text(row):
    """The row's log indexes in words (tooltip, focus detail, aria-label)."""
    parts = []
    if row["last"] is not None:
        first = (row["snapshot"] or 0) + 1
        if row["last"] >= first:
            parts.append("log %d\u2013%d" % (first, row["last"]))
        else:
            parts.append("log empty")
        if row["snapshot"]:
            parts.append("snapshot to %d" % row["snapshot"])
        parts.append("commit %d" % (row["commit"] or 0))
        parts.append("applied %d" % (row["applied"] or 0))
    elif row["match"] is not None:
        parts.append("match %d" % row["match"])
    else:
        parts.append("log not known here")
    return ", ".join(parts)


def row_label(row):
    words = ["node %s" % row["id"]]
    if row["me"]:
        words.append("this window")
    words.append(role_text(row))
    if row["leader"] and row["role"] != "leader":
        words.append("leader")
    if row["term"] is not None:
        words.append("term %s" % row["term"])
    if row["contact"] not in (None, "this window"):
        words.append(row["contact"])
    return ", ".join(words) + "; " + detail_text(row)


def _ring(info, cx, cy):
    """The election timer: the part of the ring left before this window
    campaigns, animated down to empty."""
    timer = info.get("election")
    if not timer or not timer.get("timeout_ms"):
        return ""
    left = max(0, min(timer.get("left_ms", 0), timer["timeout_ms"]))
    frac = left / timer["timeout_ms"]
    gap = RING_LEN * (1 - frac)
    return ('<circle class="raft-ring-track" cx="%d" cy="%d" r="%.0f"/>'
            '<circle class="raft-ring" data-raft-election-left="%d" cx="%d" cy="%d" r="%.0f" '
            'stroke-dasharray="%.1f" stroke-dashoffset="%.1f" transform="rotate(-90 %d %d)">'
            '<animate attributeName="stroke-dashoffset" from="%.1f" to="%.1f" dur="%dms" '
            'fill="freeze"/></circle>'
            % (cx, cy, RING_R, left, cx, cy, RING_R, RING_LEN, gap, cx, cy,
               gap, RING_LEN, max(1, left)))


def _row_svg(info, row, y, span):
    cy = y + ROW // 2
    cx = 24
    role = row["role"] or ("learner" if row["kind"] == "learner" else "unknown")
    color = COLORS.get(role, COLORS["unknown"])
    dashed = row["contact"] in ("not heard from", "not connected", "unknown")
    out = ['<g class="raft-n%s" tabindex="0" role="listitem" data-raft-key="node:%s" '
           'data-raft-pic-node="%s" data-raft-pic-kind="%s" data-raft-pic-role="%s" '
           'aria-label="%s"><title>%s</title>'
           % (" raft-me" if row["me"] else "", _esc(row["id"]), _esc(row["id"]), row["kind"],
              _esc(role), _esc(row_label(row)), _esc(row_label(row)))]
    out.append('<rect class="raft-hit" x="2" y="%d" width="%d" height="%d" rx="6"/>'
               % (y + 1, WIDTH - 4, ROW - 2))
    if row["me"]:
        out.append(_ring(info, cx, cy))
    out.append('<circle class="raft-dot%s" cx="%d" cy="%d" r="13" fill="%s"%s/>'
               % (" raft-dashed" if dashed else "", cx, cy, color,
                  ' stroke-width="3"' if row["leader"] else ""))
    out.append('<text class="raft-id" x="%d" y="%d">%s</text>' % (cx, cy + 4, _esc(row["id"])))
    if row["leader"]:
        out.append('<text class="raft-star" x="%d" y="%d" aria-hidden="true">\u2605</text>'
                   % (cx + 12, cy - 9))
    head = role_text(row) + ("" if row["term"] is None else " \u00b7 term %s" % row["term"])
    out.append('<text class="raft-head" x="48" y="%d">%s</text>' % (cy - 3, _esc(head)))
    out.append('<text class="raft-sub" x="48" y="%d">%s</text>'
               % (cy + 12, _esc(row["contact"] or "")))
    out.append(_bar(row, cy, span))
    out.append('<text class="raft-detail" x="%d" y="%d">%s</text>'
               % (BAR_X, cy + 17, _esc(detail_text(row))))
    out.append("</g>")
    return "".join(out)


def _bar(row, cy, span):
    y = cy - 9
    out = ['<rect class="raft-track" x="%d" y="%d" width="%d" height="10" rx="2"/>'
           % (BAR_X, y, BAR_W)]
    if row["last"] is not None:
        x0 = _x(row["snapshot"] or 0, span)
        if row["snapshot"]:  # compacted: held as a snapshot, not as entries
            out.append('<rect class="raft-snap" x="%d" y="%d" width="%.1f" height="10"/>'
                       % (BAR_X, y, x0 - BAR_X))
        out.append('<rect class="raft-log" x="%.1f" y="%d" width="%.1f" height="10"/>'
                   % (x0, y, max(0, _x(row["last"], span) - x0)))
        out.append('<rect class="raft-committed" x="%.1f" y="%d" width="%.1f" height="10"/>'
                   % (x0, y, max(0, _x(row["commit"] or 0, span) - x0)))
        ax = _x(row["applied"] or 0, span)
        out.append('<path class="raft-applied" d="M%.1f %d l-4 -6 h8 z"/>' % (ax, y))
        out.append('<line class="raft-commit" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>'
                   % (_x(row["commit"] or 0, span), _x(row["commit"] or 0, span), y - 2, y + 12))
    elif row["match"] is not None:
        out.append('<rect class="raft-match%s" x="%d" y="%d" width="%.1f" height="10"/>'
                   % ("" if row["contact"] == "live" else " raft-stale", BAR_X, y,
                      _x(row["match"], span) - BAR_X))
    return "".join(out)


def _clients_svg(info, y):
    """Client windows apart: those this member serves, and those of the
    cluster it sees attached elsewhere (or, in a client window, its member)."""
    if page_role(info) == "client":
        member = info.get("client_of")
        text = ("this window is a client of node %s" % member if member is not None
                else "this window is a client, connecting to a member")
        here = [info.get("node")]
    else:
        here = sorted(info.get("clients") or [])
        elsewhere = [c for c in info.get("present_clients") or [] if c not in here]
        if not here and not elsewhere:
            return "", 0
        text = "clients: %d served by this window" % len(here)
        if elsewhere:
            text += ", %d by other members" % len(elsewhere)
    out = ['<g class="raft-clients" tabindex="0" role="listitem" data-raft-key="clients" '
           'aria-label="%s"><title>%s</title>' % (_esc(text), _esc(text))]
    out.append('<text class="raft-section" x="6" y="%d" aria-hidden="true">clients</text>'
               % (y + 12))
    for i, cid in enumerate(here[:12]):
        out.append('<circle class="raft-client" data-raft-pic-client="%s" cx="%d" cy="%d" r="6"/>'
                   % (_esc(cid), 70 + 16 * i, y + 8))
    out.append('<text class="raft-sub" x="%d" y="%d">%s</text>'
               % (80 + 16 * min(len(here), 12), y + 12, _esc(text)))
    out.append("</g>")
    return "".join(out), 24


def picture_svg(info):
    """The SVG of the cluster as this window sees it ("" before it runs)."""
    if not info.get("running") and page_role(info) != "client":
        return ""
    out = []
    y = TOP
    if page_role(info) != "client":
        rows = rows_of(info)
        span = _span(rows)
        section = None
        for row in rows:
            if row["kind"] != section:
                section = row["kind"]
                out.append('<text class="raft-section" x="6" y="%d" aria-hidden="true">%ss</text>'
                           % (y + 2, section))
                y += 8
            out.append(_row_svg(info, row, y, span))
            y += ROW
        out.append('<text class="raft-axis" x="%d" y="14" aria-hidden="true">log index %d</text>'
                   '<text class="raft-axis raft-axis-end" x="%d" y="14" aria-hidden="true">%d</text>'
                   % (BAR_X, span[0], BAR_X + BAR_W, span[1]))
    clients, height = _clients_svg(info, y)
    out.append(clients)
    y += height
    return ('<svg class="raft-picture" role="list" aria-label="the cluster as this window sees it" '
            'viewBox="0 0 %d %d" width="%d" height="%d">%s</svg>'
            % (WIDTH, y + 4, WIDTH, y + 4, "".join(out)))


def live_text(info):
    """One sentence for the aria-live region: what changes the user's
    situation (role, term, leader, peers, writable), not every commit."""
    role = page_role(info)
    me = info.get("node")
    if info.get("error"):
        return "Node %s stopped: %s" % (me, info["error"])
    if role == "client":
        member = info.get("client_of")
        where = ("client of node %s" % member) if member is not None else "a client, connecting"
        return "This window is %s; %s." % (where, "read-only" if not info.get("quorum") else "writable")
    if role == "offline":
        return "Node %s is starting." % me
    if info.get("membership") == "none":
        return "Node %s is not a member of cluster %s." % (me, info.get("cluster") or "?")
    leader = info.get("leader")
    members = (info.get("voters") or []) + (info.get("learners") or [])
    peers = [p for p in info.get("peers") or [] if not members or p in members]
    others = max(0, (len(members) or voter_count(info)) - 1)
    text = "Node %s is %s in term %s; " % (me, role, info.get("term", 0))
    if role != "leader":
        text += "leader: %s; " % ("none" if leader is None else "node %s" % leader)
    text += "%d of %s connected; " % (len(peers), _plural(others, "peer"))
    writable = info.get("quorum") and info.get("membership") != "none"
    return text + ("writable." if writable else "read-only.")
