"""<raft-status>: the status panel of every app page (raft/browser/status_html.py
draws the text and the members table, raft/browser/status_picture.py the
picture), redrawn at most every REDRAW_MS, and its membership controls.

    panel = StatusPanel(info, clock, on_action=None)
    panel.changed()          # something changed: redraw soon (throttled)

info() returns the runtime's status() dict; on_action(op, node) is a
coroutine function returning {"ok": config} or {"error": code, "reason":
text} (it never raises). While the node cannot write, every element of the
page marked `data-raft-write` is disabled; when it can again, the one that
carries `autofocus` takes the focus unless the user has focused something
else (autofocus never takes on a control that loads disabled).

Keyboard: every control and every node of the picture can be focused (Tab;
the arrow keys move between the picture's nodes), and a redraw puts the
focus back on the element with the same data-raft-key. The one-line summary
sits in an aria-live region and changes with the role, term, leader, peers
or writability, not with every commit.
"""

import asyncio

from raft.browser.status_html import (html_attributes, is_read_only, render_members,
                                      render_summary, PanelState)
from raft.browser.status_picture import live_text, picture_svg

# Drawing the status costs milliseconds of DOM work; under load the runtime
# changes state thousands of times a second.
REDRAW_MS = 100
# While a node of the picture has the keyboard focus the picture is redrawn
# less often: each redraw puts the focus back, which a screen reader may read.
FOCUSED_PICTURE_MS = 1000
PARTS = ("summary", "live", "picture", "members")
SUMMARY, LIVE, PICTURE, MEMBERS = 0, 1, 2, 3
ARROWS = {"ArrowDown": 1, "ArrowRight": 1, "ArrowUp": -1, "ArrowLeft": -1}

STYLE = """
raft-status{display:block;font:13px/1.4 system-ui,sans-serif;border:1px solid #ccc;
border-radius:6px;padding:6px 10px;margin:8px 0;background:#fafafa}
raft-status dl{display:flex;flex-wrap:wrap;gap:2px 14px;margin:0}
raft-status dt{color:#666}raft-status dd{margin:0 0 0 -10px;font-weight:600}
raft-status .raft-role-leader{color:#1a7f37}raft-status .raft-role-offline{color:#b42318}
raft-status .raft-alert{color:#b42318;font-weight:600;margin-top:4px}
raft-status .raft-note{color:#8a6d00;margin-top:4px}
raft-status .raft-members-head{margin-top:4px;color:#444;text-align:left;white-space:nowrap}
raft-status .raft-live{margin:4px 0 0;color:#444}
raft-status table{border-collapse:collapse;margin:4px 0}
raft-status td,raft-status th{padding:1px 8px 1px 0;text-align:left;font-weight:normal}
raft-status th{color:#666;font-size:11px}
raft-status button{font:inherit;padding:0 6px;margin-right:4px}
raft-status .raft-confirm{background:#fff8e1;border:1px solid #e0c060;padding:4px 6px;margin:4px 0}
raft-status .raft-outcome-ok{color:#1a7f37;margin:4px 0}
raft-status .raft-outcome-refused,raft-status .raft-outcome-failed{color:#b42318;margin:4px 0}
html[data-raft-readonly="true"] [data-raft-write]{opacity:.5}
raft-status svg.raft-picture{display:block;max-width:100%;height:auto;margin-top:4px}
raft-status svg text{font:12px system-ui,sans-serif;fill:#24292f}
raft-status svg .raft-id{fill:#fff;font-weight:700;text-anchor:middle}
raft-status svg .raft-head{font-weight:600}
raft-status svg .raft-sub,raft-status svg .raft-axis{fill:#57606a;font-size:11px}
raft-status svg .raft-axis-end{text-anchor:end}
raft-status svg .raft-section{fill:#57606a;font-size:10px;text-transform:uppercase}
raft-status svg .raft-star{fill:#bf8700;font-size:14px}
raft-status svg .raft-dot{stroke:#24292f;stroke-width:1}
raft-status svg .raft-dashed{stroke-dasharray:3 2;fill-opacity:.35}
raft-status svg .raft-ring-track{fill:none;stroke:#eaeef2;stroke-width:3}
raft-status svg .raft-ring{fill:none;stroke:#bf8700;stroke-width:3}
raft-status svg .raft-track{fill:#eaeef2}
raft-status svg .raft-snap{fill:#d0d7de}
raft-status svg .raft-log{fill:#9ecbff}
raft-status svg .raft-committed,raft-status svg .raft-match{fill:#0969da}
raft-status svg .raft-stale{fill:#8c959f}
raft-status svg .raft-commit{stroke:#0a3069;stroke-width:2}
raft-status svg .raft-applied{fill:#1a7f37}
raft-status svg .raft-client{fill:#57606a}
raft-status svg .raft-hit{fill:transparent}
raft-status svg .raft-detail{display:none;fill:#57606a;font-size:10px}
raft-status svg g:focus .raft-detail,raft-status svg g:hover .raft-detail{display:inline}
raft-status svg g:focus{outline:none}
raft-status svg g:focus .raft-hit{fill:#f0f6fc;stroke:#0969da;stroke-width:2}
raft-status svg g:hover .raft-hit{fill:#f6f8fa}
"""


class StatusPanel:
    """Mounts in the page's <raft-status> element (created at the top of
    <body> if the page has none) and re-renders each part only when it
    changed, so the members controls are not replaced under the user's
    pointer while writes move the commit index. One click and one keydown
    listener on the element (delegation) serve every control, whatever was
    redrawn since."""

    def __init__(self, info, clock, on_action=None):
        from pyscript import document
        from pyscript.ffi import create_proxy
        self.document = document
        self.info = info
        self.clock = clock
        self.on_action = on_action
        element = document.querySelector("raft-status")
        if not element:  # JS null: None on MicroPython, jsnull on Pyodide
            element = document.createElement("raft-status")
            document.body.prepend(element)
        self.element = element
        style = document.createElement("style")
        style.textContent = STYLE
        document.head.appendChild(style)
        element.innerHTML = ('<div data-raft-part="summary"></div>'
                             '<p class="raft-live" aria-live="polite" data-raft-part="live"></p>'
                             '<div data-raft-part="picture"></div>'
                             '<div data-raft-part="members"></div>')
        self._parts = [element.querySelector('[data-raft-part="%s"]' % name) for name in PARTS]
        self.panel = PanelState()
        self._info = None
        self._shown = [None] * (len(PARTS) + 1)  # each part's markup, then the attributes
        self._writable = False
        self._picture_ms = None
        self._drawn_ms = None
        self._pending = False
        self._task = None
        self._proxies = [create_proxy(self._on_click), create_proxy(self._on_key)]  # page's life
        element.addEventListener("click", self._proxies[0])
        element.addEventListener("keydown", self._proxies[1])

    def changed(self):
        """Redraw now if the last one is REDRAW_MS old, else once then."""
        if self._pending:
            return
        now = self.clock()
        if self._drawn_ms is None or now - self._drawn_ms >= REDRAW_MS:
            self.redraw()
        else:
            self._pending = True
            self._task = asyncio.get_event_loop().create_task(
                self._later(self._drawn_ms + REDRAW_MS - now))

    async def _later(self, wait_ms):
        await asyncio.sleep(wait_ms / 1000)
        self._pending = False
        self.redraw()

    def redraw(self):
        self._drawn_ms = self.clock()
        self._info = self.info()
        self._draw()

    def _draw(self):
        info = self._info
        if info is None:
            return
        markup = [render_summary(info), live_text(info), picture_svg(info),
                  render_members(info, self.panel)]
        focus = self._focused_key()
        if (focus is not None and focus[0] == PICTURE and markup[PICTURE] != self._shown[PICTURE]
                and self._picture_ms is not None
                and self.clock() - self._picture_ms < FOCUSED_PICTURE_MS):
            markup[PICTURE] = self._shown[PICTURE]
            self._redraw_later(self._picture_ms + FOCUSED_PICTURE_MS - self.clock())
        for i in range(len(PARTS)):
            if markup[i] == self._shown[i]:
                continue
            if i == LIVE:
                self._parts[i].textContent = markup[i]
            else:
                self._parts[i].innerHTML = markup[i]
            if i == PICTURE:
                self._picture_ms = self.clock()
            if focus is not None and focus[0] == i:
                self._refocus(self._parts[i], focus[1])
        attrs = html_attributes(info)
        if attrs != self._shown[-1]:
            root = self.document.documentElement
            for name, value in attrs:
                if value is None:
                    root.removeAttribute(name)
                else:
                    root.setAttribute(name, value)
        if markup[SUMMARY] != self._shown[SUMMARY] or attrs != self._shown[-1]:
            # Also reaches write controls the app rendered since the last change.
            read_only = is_read_only(info)
            items = self.document.querySelectorAll("[data-raft-write]")
            for i in range(items.length):
                items.item(i).disabled = read_only
            if not read_only and not self._writable:
                self._autofocus()
            self._writable = not read_only
        self._shown = markup + [attrs]

    def _redraw_later(self, wait_ms):
        if not self._pending:
            self._pending = True
            self._task = asyncio.get_event_loop().create_task(self._later(max(0, wait_ms)))

    # ---- focus ------------------------------------------------------------
    def _focused_key(self):
        """(part index, data-raft-key or None) of the focused element when it
        is inside the panel, else None."""
        active = self.document.activeElement
        if not active or not self.element.contains(active):
            return None
        key = active.getAttribute("data-raft-key")
        for i in range(len(PARTS)):
            if self._parts[i].contains(active):
                return (i, str(key) if isinstance(key, str) else None)
        return None

    def _keyed(self, part):
        items = part.querySelectorAll("[data-raft-key]")
        return [items.item(i) for i in range(items.length)]

    def _refocus(self, part, key):
        """After a part's markup was replaced: focus its element with the same key."""
        if key is None:
            return
        for el in self._keyed(part):
            if str(el.getAttribute("data-raft-key")) == key:
                el.focus()
                return

    def _autofocus(self):
        """The page's autofocus control, just enabled, takes the focus unless
        the user has focused something."""
        active = self.document.activeElement
        if active and not active.isSameNode(self.document.body):
            return
        target = self.document.querySelector("[data-raft-write][autofocus]")
        if target:
            target.focus()

    def _on_key(self, event):
        """The arrow keys move between the picture's nodes."""
        step = ARROWS.get(str(event.key))
        if step is None:
            return
        nodes = self._keyed(self._parts[PICTURE])
        for i in range(len(nodes)):
            if nodes[i].isSameNode(event.target):
                if 0 <= i + step < len(nodes):
                    nodes[i + step].focus()
                event.preventDefault()
                return

    # ---- membership controls ------------------------------------------
    def _on_click(self, event):
        button = event.target.closest("[data-raft-action]")
        if not button:  # JS null (None on MicroPython, jsnull on Pyodide)
            return
        action = str(button.getAttribute("data-raft-action"))
        target = button.getAttribute("data-raft-target")
        self.act(action, str(target) if isinstance(target, str) else None)

    def act(self, action, target=None):
        send = self.panel.click(action, target)
        if send is not None:
            asyncio.get_event_loop().create_task(self._run(send[0], send[1]))
        self._draw()  # at once: the user sees the question / "Working" now
        if self.panel.confirm is not None:
            self._focus_in_members("confirm")  # the question's answer is one key away

    async def _run(self, op, node):
        try:
            if self.on_action is None:
                result = {"error": "unavailable", "reason": "this page cannot change membership"}
            else:
                result = await self.on_action(op, node)
        except Exception as e:  # the callback should not raise; show it if it does
            result = {"error": "failed", "reason": repr(e)}
        self.panel.finish(op, node, result)
        focused = self._focused_key()
        self._draw()
        if focused is None or focused[0] == MEMBERS:
            self._focus_in_members("dismiss")  # the outcome's OK

    def _focus_in_members(self, key):
        active = self.document.activeElement
        if active and not active.isSameNode(self.document.body) and not self.element.contains(active):
            return  # the user is elsewhere on the page
        self._refocus(self._parts[MEMBERS], key)
