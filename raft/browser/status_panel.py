"""<raft-status>: the status panel of every app page (raft/browser/status_html.py
draws it), redrawn at most every REDRAW_MS, and its membership controls.

    panel = StatusPanel(info, clock, on_action=None)
    panel.changed()          # something changed: redraw soon (throttled)

info() returns the runtime's status() dict; on_action(op, node) is a
coroutine function returning {"ok": config} or {"error": code, "reason":
text} (it never raises). While the node cannot write, every element of the
page marked `data-raft-write` is disabled.
"""

import asyncio

from raft.browser.status_html import (html_attributes, is_read_only, render_members,
                                      render_summary, PanelState)

# Drawing the status costs milliseconds of DOM work; under load the runtime
# changes state thousands of times a second.
REDRAW_MS = 100

STYLE = """
raft-status{display:block;font:13px/1.4 system-ui,sans-serif;border:1px solid #ccc;
border-radius:6px;padding:6px 10px;margin:8px 0;background:#fafafa}
raft-status dl{display:flex;flex-wrap:wrap;gap:2px 14px;margin:0}
raft-status dt{color:#666}raft-status dd{margin:0 0 0 -10px;font-weight:600}
raft-status .raft-role-leader{color:#1a7f37}raft-status .raft-role-offline{color:#b42318}
raft-status .raft-alert{color:#b42318;font-weight:600;margin-top:4px}
raft-status .raft-note{color:#8a6d00;margin-top:4px}
raft-status .raft-members-head{margin-top:4px;color:#444}
raft-status table{border-collapse:collapse;margin:4px 0}
raft-status td,raft-status th{padding:1px 8px 1px 0;text-align:left;font-weight:normal}
raft-status button{font:inherit;padding:0 6px;margin-right:4px}
raft-status .raft-confirm{background:#fff8e1;border:1px solid #e0c060;padding:4px 6px;margin:4px 0}
raft-status .raft-outcome-ok{color:#1a7f37;margin:4px 0}
raft-status .raft-outcome-refused,raft-status .raft-outcome-failed{color:#b42318;margin:4px 0}
html[data-raft-readonly="true"] [data-raft-write]{opacity:.5}
"""


class StatusPanel:
    """Mounts in the page's <raft-status> element (created at the top of
    <body> if the page has none) and re-renders each part only when it
    changed, so the members controls are not replaced under the user's
    pointer while writes move the commit index. One click listener on the
    element (delegation) serves every button, whatever was redrawn since."""

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
        element.innerHTML = '<div data-raft-part="summary"></div><div data-raft-part="members"></div>'
        self._summary = element.querySelector('[data-raft-part="summary"]')
        self._members = element.querySelector('[data-raft-part="members"]')
        self.panel = PanelState()
        self._info = None
        self._shown = [None, None, None]  # summary HTML, members HTML, attributes
        self._drawn_ms = None
        self._pending = False
        self._task = None
        self._on_click_proxy = create_proxy(self._on_click)  # kept for the page's life
        element.addEventListener("click", self._on_click_proxy)

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
        parts = (render_summary(info), render_members(info, self.panel), html_attributes(info))
        if parts[0] != self._shown[0]:
            self._summary.innerHTML = parts[0]
        if parts[1] != self._shown[1]:
            self._members.innerHTML = parts[1]
        if parts[2] != self._shown[2]:
            root = self.document.documentElement
            for name, value in parts[2]:
                if value is None:
                    root.removeAttribute(name)
                else:
                    root.setAttribute(name, value)
        if parts[0] != self._shown[0] or parts[2] != self._shown[2]:
            # Also reaches write controls the app rendered since the last change.
            read_only = is_read_only(info)
            items = self.document.querySelectorAll("[data-raft-write]")
            for i in range(items.length):
                items.item(i).disabled = read_only
        self._shown = list(parts)

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

    async def _run(self, op, node):
        try:
            if self.on_action is None:
                result = {"error": "unavailable", "reason": "this page cannot change membership"}
            else:
                result = await self.on_action(op, node)
        except Exception as e:  # the callback should not raise; show it if it does
            result = {"error": "failed", "reason": repr(e)}
        self.panel.finish(op, node, result)
        self._draw()
