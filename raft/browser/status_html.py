"""The status panel's content: a runtime's status() dict as HTML and <html> attributes.

Shows node id, role, term, leader, commit index, peers connected, and for the
last write made on this page "committed on N of M" (M = voters now). Below
that, the members table (id, voter/learner, leader mark, live / caught up
when this window is the leader, else connected) with the controls: "Add as
learner" for windows present in the cluster but not members, "Promote" for
learners, "Remove" for members. Every action asks for confirmation inline,
then shows the outcome (done, or the cluster's refusal in words): what the
user is doing lives in a PanelState, not in the DOM, so redraws keep it.

The <html> attributes (data-raft-node, data-raft-role, data-raft-commit,
data-raft-readonly, data-raft-error, data-raft-voters, data-raft-learners,
data-raft-membership) are for automation. Everything here is pure (tested in
CPython); raft/browser/status_panel.py puts it in the page.
"""

from html import escape

# Roles as the page exposes them: the core's precandidate is still a candidate
# to the outside world; a node that stopped (or never started) is offline.
ROLES = {"follower": "follower", "precandidate": "candidate", "candidate": "candidate",
         "leader": "leader", "client": "client"}  # client: a page outside the cluster
OPS = ("add_learner", "promote", "remove")
MEMBER_COLUMNS = ("node", "membership", "state", "actions")
# A learner this close to the leader's commit shows as caught up: under
# steady writes it trails by the entries in flight, and the leader would
# refuse a promotion only until its next ack (the driver retries that).
CAUGHT_UP_SLACK = 64


def page_role(info):
    if info.get("error") or not info.get("running"):
        return "offline"
    return ROLES.get(info.get("role"), "offline")


def is_read_only(info):
    return (page_role(info) == "offline" or not info.get("quorum")
            or info.get("membership") == "none")


def _esc(text):
    return escape(str(text))


def id_order(node_id):
    """Sort key: window ids are numbers ("2" before "10")."""
    return (len(node_id), node_id)


def voter_count(info):
    voters = info.get("voters")
    return len(voters) if voters is not None else info.get("size", 0)


def last_write_text(info):
    w = info.get("last_write")
    if not w:
        return "none yet"
    size = voter_count(info)
    if w.get("error"):
        return "failed: " + w["error"]
    if not w.get("committed"):
        return "pending"
    n = w.get("on")
    if w.get("exact"):
        return "committed on %d of %d" % (n, size)
    # Followers only see a lower bound; a committed entry is on a majority.
    return "committed on %d+ of %d" % (n, size)


class PanelState:
    """What the user is doing in the membership panel; survives redraws."""

    def __init__(self):
        self.confirm = None  # (op, node) waiting for Confirm / Cancel
        self.busy = None  # (op, node) sent, outcome not known yet
        self.outcome = None  # (kind, text): kind "ok" | "refused" | "failed"

    def click(self, action, target=None):
        """One step of the confirm flow: an op asks first, confirm returns
        the (op, node) to send, cancel and dismiss clear. One change at a
        time: nothing new is asked while one is in flight."""
        if action in OPS and target and self.busy is None:
            self.confirm = (action, target)
            self.outcome = None
        elif action == "cancel":
            self.confirm = None
        elif action == "dismiss":
            self.outcome = None
        elif action == "confirm" and self.confirm is not None and self.busy is None:
            self.busy, self.confirm = self.confirm, None
            return self.busy
        return None

    def finish(self, op, node, result):
        self.busy = None
        self.outcome = outcome_of(op, node, result)


def _majority(n):
    return n // 2 + 1


def confirm_text(op, node, info):
    """The question asked before a change is sent."""
    voters = info.get("voters") or []
    me = info.get("node")
    who = "this window (node %s)" % node if node == me else "node %s" % node
    if op == "add_learner":
        return ("Add %s to the cluster as a learner? It receives the log but does not "
                "vote until you promote it." % who)
    if op == "promote":
        n = len(voters) + 1
        return ("Promote %s to voter? The cluster will have %d voters (a majority needs %d)."
                % (who, n, _majority(n)))
    if op == "remove":
        if node in voters:
            n = len(voters) - 1
            text = ("Remove %s from the cluster? It stops receiving updates; the cluster will "
                    "have %d voter%s (a majority needs %d)." % (who, n, "" if n == 1 else "s",
                                                                _majority(n) if n else 0))
            if node == info.get("leader"):
                text += " It is the leader: it hands over once the change commits."
            return text
        who = "this window (learner %s)" % node if node == me else "learner %s" % node
        return "Remove %s from the cluster? It stops receiving updates." % who
    return "%s %s?" % (op, who)


def outcome_of(op, node, result):
    """(kind, text) for the result of on_action: {"ok": config} or
    {"error": code, "reason": text}."""
    if "ok" in result:
        cfg = result["ok"] or {}
        done = {"add_learner": "node %s was added as a learner" % node,
                "promote": "node %s is now a voter" % node,
                "remove": "node %s was removed" % node}.get(op, "%s %s" % (op, node))
        voters = ", ".join(sorted(cfg.get("voters") or [], key=id_order)) or "none"
        learners = ", ".join(sorted(cfg.get("learners") or [], key=id_order)) or "none"
        return "ok", "Done: %s (voters: %s; learners: %s)." % (done, voters, learners)
    error = result.get("error")
    reason = result.get("reason")
    if error in ("unsafe", "invalid"):
        return "refused", "Refused: %s." % (reason or error)
    if error == "conf_pending":
        return "failed", ("Not now: another membership change is still in progress (%s). "
                          "Try again in a moment." % (reason or "retry soon"))
    if error in ("no_leader", "leadership_lost", "timeout"):
        return "failed", "Failed: no leader could be reached (%s). Try again." % error
    if error == "halted":
        return "failed", "Failed: this node has stopped."
    return "failed", "Failed: %s%s." % (error, ": %s" % reason if reason else "")


def member_state(node_id, info):
    """What this window knows of a member's liveness, in words."""
    if node_id == info.get("node"):
        return "this window"
    peers = info.get("peer_status")
    if peers is not None:  # this window leads: it knows matches and contact
        p = peers.get(node_id)
        if p is None:
            return "unknown"
        live = "live" if p.get("recent") else "not heard from"
        if node_id in (info.get("learners") or []):
            behind = info.get("commit", 0) - p.get("match", 0)
            if behind <= CAUGHT_UP_SLACK:
                return live + ", caught up"
            return "%s, catching up (%d entries behind)" % (live, behind)
        return live
    return "connected" if node_id in (info.get("peers") or []) else "not connected"


def _button(op, node, label, busy):
    # data-raft-key names the control across redraws (the panel puts the
    # focus back on it after replacing the HTML)
    return ('<button type="button" data-raft-key="%s:%s" data-raft-action="%s" '
            'data-raft-target="%s"%s>%s</button>'
            % (op, _esc(node), op, _esc(node), " disabled" if busy else "", label))


def _plain_button(action, label):
    return ('<button type="button" data-raft-key="%s" data-raft-action="%s">%s</button>'
            % (action, action, label))


def render_members(info, panel=None):
    """The membership part of the panel (empty before the node runs)."""
    if page_role(info) == "offline" or info.get("voters") is None:
        return ""
    panel = panel or PanelState()
    voters = info.get("voters") or []
    learners = info.get("learners") or []
    me = info.get("node")
    leader = info.get("leader")
    busy = panel.busy is not None or panel.confirm is not None
    member = info.get("membership") != "none"
    out = []
    if not member:
        out.append('<div class="raft-note" data-raft-not-member>This window (node %s) is not a '
                   "member of cluster %s: add it from a member's status panel.</div>"
                   % (_esc(me), _esc(info.get("cluster") or "?")))
    elif info.get("membership") == "learner":
        out.append('<div class="raft-note">This window is a learner: it receives every change '
                   "but does not vote. Promote it from a member's status panel.</div>")
    # A window outside the cluster gets no log: it knows only the bootstrap
    # configuration (or the one it had when it was removed).
    out.append('<table><caption class="raft-members-head">members%s: %d voter%s, %d learner%s '
               "(a majority needs %d)</caption><thead><tr>%s</tr></thead><tbody>"
               % ("" if member else " as this window last knew them",
                  len(voters), "" if len(voters) == 1 else "s",
                  len(learners), "" if len(learners) == 1 else "s",
                  _majority(len(voters)) if voters else 0,
                  "".join('<th scope="col">%s</th>' % h for h in MEMBER_COLUMNS)))
    for node_id in sorted(voters + learners, key=id_order):
        kind = "voter" if node_id in voters else "learner"
        cells = [_esc(node_id), kind + (" \u2605 leader" if node_id == leader else ""),
                 _esc(member_state(node_id, info))]
        buttons = ""
        if member:
            if kind == "learner":
                buttons = _button("promote", node_id, "Promote", busy)
            buttons += _button("remove", node_id, "Remove", busy)
        out.append('<tr data-raft-member="%s" data-raft-kind="%s"><td>%s</td><td>%s</td>'
                   "<td>%s</td><td>%s</td></tr>" % (_esc(node_id), kind, cells[0], cells[1],
                                                     cells[2], buttons))
    # Windows of this cluster the introducer sees that are not members yet.
    waiting = sorted((p for p in info.get("present") or []
                      if p not in voters and p not in learners), key=id_order)
    for node_id in waiting:
        buttons = _button("add_learner", node_id, "Add as learner", busy) if member else ""
        out.append('<tr data-raft-member="%s" data-raft-kind="none"><td>%s</td>'
                   "<td>not a member</td><td>%s</td><td>%s</td></tr>"
                   % (_esc(node_id), _esc(node_id),
                      "this window" if node_id == me else "present", buttons))
    out.append("</tbody></table>")
    if panel.confirm is not None:
        op, node = panel.confirm
        out.append('<div class="raft-confirm" data-raft-confirming="%s %s">'
                   '<span data-raft-question>%s</span> %s%s</div>'
                   % (op, _esc(node), _esc(confirm_text(op, node, info)),
                      _plain_button("confirm", "Confirm"), _plain_button("cancel", "Cancel")))
    elif panel.busy is not None:
        op, node = panel.busy
        out.append('<div class="raft-note" data-raft-busy>Working: %s node %s\u2026</div>'
                   % ({"add_learner": "adding", "promote": "promoting",
                       "remove": "removing"}.get(op, op), _esc(node)))
    if panel.outcome is not None:
        kind, text = panel.outcome
        out.append('<div class="raft-outcome-%s" role="status" data-raft-outcome="%s">'
                   '<span data-raft-outcome-text>%s</span> %s</div>'
                   % (kind, kind, _esc(text), _plain_button("dismiss", "OK")))
    return "".join(out)


def cluster_text(info):
    """The cluster's name and whether it is keyed (raft/cluster_key.py) or
    open, in the HTML of the status panel's "cluster" row."""
    name = _esc(info.get("cluster") or "?")
    if info.get("keyed"):
        return '%s <span data-raft-keyed="true">keyed</span>' % name
    return ('%s <span data-raft-keyed="false" title="no cluster key: anyone who reaches the '
            'server can join">open</span>' % name)


def render_summary(info):
    role = page_role(info)
    peers = info.get("peers") or []
    members = (info.get("voters") or []) + (info.get("learners") or [])
    if info.get("voters") is not None:
        # Channels to clients or to windows not (yet) members are not peers.
        peers = [p for p in peers if p in members]
        others = max(0, len(members) - (1 if info.get("node") in members else 0))
    else:
        others = max(0, info.get("size", 1) - 1)
    leader = info.get("leader")
    rows = [  # name, HTML of the value
        ("node", _esc(info.get("node"))),
        ("cluster", cluster_text(info)),
        ("role", '<span class="raft-role-%s">%s</span>' % (role, role)),
        ("term", _esc(info.get("term", 0))),
        ("leader", "none" if leader is None else _esc(leader)),
        ("commit", _esc(info.get("commit", 0))),
        ("peers", _esc("%d of %d (%s)" % (len(peers), others, ", ".join(peers) or "none"))),
        ("last write", _esc(last_write_text(info))),
    ]
    if role == "client":
        # A client window (raft/CLIENT.md) has no term and no peers of its
        # own: it shows which member serves it and how far it has applied.
        member = info.get("client_of")
        rows = [
            ("client", _esc(info.get("node"))),
            ("cluster", cluster_text(info)),
            ("role", '<span class="raft-role-client">%s</span>' % (
                "client of node %s" % _esc(member) if member is not None
                else "client, connecting to a member")),
            ("leader", "none" if leader is None else _esc(leader)),
            ("applied", _esc(info.get("applied", 0))),
            ("last write", _esc(last_write_text(info))),
        ]
    out = ["<dl>"]
    for name, value in rows:
        out.append('<dt>%s</dt><dd data-raft-field="%s">%s</dd>' % (name, name.replace(" ", "-"), value))
    out.append("</dl>")
    if info.get("error"):
        out.append('<div class="raft-alert" role="alert">%s</div>' % _esc(info["error"]))
    elif info.get("membership") == "none":
        pass  # the members part says so, with what to do
    elif is_read_only(info):
        out.append('<div class="raft-note">read-only: this node is not in a majority '
                   '(no leader reachable)</div>')
    if info.get("key_error") and len(peers) < others:  # why peers are missing (the key)
        out.append('<div class="raft-alert" role="alert" data-raft-key-error>%s</div>'
                   % _esc(info["key_error"]))
    if info.get("ice_error") and len(peers) < others:  # why peers are missing (TURN, STUN)
        out.append('<div class="raft-alert" role="alert" data-raft-ice-error>%s</div>'
                   % _esc(info["ice_error"]))
    if info.get("repaired"):
        out.append('<div class="raft-note">%s</div>' % _esc(info["repaired"]))
    return "".join(out)


def render_html(info, panel=None):
    return render_summary(info) + render_members(info, panel)


def html_attributes(info):
    """(name, value) of the <html> data attributes; value None = remove it."""
    return (
        ("data-raft-node", str(info.get("node"))),
        ("data-raft-role", page_role(info)),
        ("data-raft-commit", str(info.get("commit", 0))),
        ("data-raft-readonly", "true" if is_read_only(info) else "false"),
        ("data-raft-error", info.get("error") or None),
        ("data-raft-voters", ",".join(sorted(info["voters"], key=id_order))
         if info.get("voters") is not None else None),
        ("data-raft-learners", ",".join(sorted(info["learners"], key=id_order))
         if info.get("learners") is not None else None),
        ("data-raft-membership", info.get("membership")),
    )
