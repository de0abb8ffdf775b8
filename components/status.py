"""Cluster status component: who this node is and what the cluster is doing.

Shows node id, role, term, leader, commit index, peers connected, and for the
last write made on this page "committed on N of M". Keeps <html> attributes
current for automation (data-raft-node, data-raft-role, data-raft-commit,
data-raft-readonly, data-raft-error) and, while the node cannot write (no
quorum, storage full, damaged storage), disables every element of the page
marked `data-raft-write`, so the app shows itself read-only.

It reads one plain dict (raft.browser.driver.Driver.status()); render_html()
is pure so the layout is testable anywhere.
"""

# Roles as the page exposes them: the core's precandidate is still a candidate
# to the outside world; a node that stopped (or never started) is offline.
ROLES = {"follower": "follower", "precandidate": "candidate", "candidate": "candidate",
         "leader": "leader"}

STYLE = """
raft-status{display:block;font:13px/1.4 system-ui,sans-serif;border:1px solid #ccc;
border-radius:6px;padding:6px 10px;margin:8px 0;background:#fafafa}
raft-status dl{display:flex;flex-wrap:wrap;gap:2px 14px;margin:0}
raft-status dt{color:#666}raft-status dd{margin:0 0 0 -10px;font-weight:600}
raft-status .raft-role-leader{color:#1a7f37}raft-status .raft-role-offline{color:#b42318}
raft-status .raft-alert{color:#b42318;font-weight:600;margin-top:4px}
raft-status .raft-note{color:#8a6d00;margin-top:4px}
html[data-raft-readonly="true"] [data-raft-write]{opacity:.5}
"""


def page_role(info):
    if info.get("error") or not info.get("running"):
        return "offline"
    return ROLES.get(info.get("role"), "offline")


def is_read_only(info):
    return page_role(info) == "offline" or not info.get("quorum")


def _esc(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def last_write_text(info):
    w = info.get("last_write")
    if not w:
        return "none yet"
    size = info.get("size")
    if w.get("error"):
        return "failed: " + w["error"]
    if not w.get("committed"):
        return "pending"
    n = w.get("on")
    if w.get("exact"):
        return "committed on %d of %d" % (n, size)
    # Followers only see a lower bound; a committed entry is on a majority.
    return "committed on %d+ of %d" % (n, size)


def render_html(info):
    role = page_role(info)
    peers = info.get("peers") or []
    leader = info.get("leader")
    rows = [  # name, HTML of the value
        ("node", _esc(info.get("node"))),
        ("role", '<span class="raft-role-%s">%s</span>' % (role, role)),
        ("term", _esc(info.get("term", 0))),
        ("leader", "none" if leader is None else _esc(leader)),
        ("commit", _esc(info.get("commit", 0))),
        ("peers", _esc("%d of %d (%s)" % (len(peers), max(0, info.get("size", 1) - 1),
                                         ", ".join(peers) or "none"))),
        ("last write", _esc(last_write_text(info))),
    ]
    out = ["<dl>"]
    for name, value in rows:
        out.append('<dt>%s</dt><dd data-raft-field="%s">%s</dd>' % (name, name.replace(" ", "-"), value))
    out.append("</dl>")
    if info.get("error"):
        out.append('<div class="raft-alert" role="alert">%s</div>' % _esc(info["error"]))
    elif is_read_only(info):
        out.append('<div class="raft-note">read-only: this node is not in a majority '
                   '(no leader reachable)</div>')
    if info.get("repaired"):
        out.append('<div class="raft-note">%s</div>' % _esc(info["repaired"]))
    return "".join(out)


class ClusterStatus:
    """Mounts in a <raft-status> element (created at the top of <body> if the
    page has none) and re-renders only when the status changed."""

    def __init__(self, element=None):
        from pyscript import document
        self.document = document
        if element is None:
            element = document.querySelector("raft-status")
        if element is None:
            element = document.createElement("raft-status")
            document.body.prepend(element)
        self.element = element
        style = document.createElement("style")
        style.textContent = STYLE
        document.head.appendChild(style)
        self._shown = None

    def update(self, info):
        html = render_html(info)
        root = self.document.documentElement
        role = page_role(info)
        attrs = (str(info.get("node")), role, str(info.get("commit", 0)),
                 "true" if is_read_only(info) else "false", info.get("error") or "")
        if (html, attrs) == self._shown:
            return
        self._shown = (html, attrs)
        self.element.innerHTML = html
        for name, value in zip(("data-raft-node", "data-raft-role", "data-raft-commit",
                                "data-raft-readonly", "data-raft-error"), attrs):
            if name == "data-raft-error" and not value:
                root.removeAttribute(name)
            else:
                root.setAttribute(name, value)
        # Also reaches write controls the app rendered since the last change.
        read_only = attrs[3] == "true"
        items = self.document.querySelectorAll("[data-raft-write]")
        for i in range(items.length):
            items.item(i).disabled = read_only
