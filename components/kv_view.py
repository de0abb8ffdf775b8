"""etcd-like key/value app: revisions and watch events over raft.kv, and its view.

KVState wraps raft.kv.KVStateMachine (which does put/get/del/cas) and records,
for every key, the (term, index) of the log entry that last changed it, plus
a bounded list of change events for watches. It takes each command with its
entry's place (apply_entry(index, term, command), raft/API.md), so every
replica, applying the same log, stamps the same revisions.

KVState and the format_* / render_* helpers are pure (tested in CPython);
KVView touches the DOM and is imported only in the page.
"""

import json
from html import escape

from raft.kv import KVStateMachine

MAX_EVENTS = 500  # change events kept per window for watches
MAX_KEY = 256
MAX_VALUE = 8000  # chars; an entry must fit one data-channel message
ARITY = {"put": 3, "get": 2, "del": 2, "cas": 4}


def change_of(command, result):
    """(op, key, value) when applying `command` (with this result) changed the
    store, else None. op is "put" or "del"; a successful cas is a put."""
    if type(command) is not list or not command or command[0] not in ARITY:
        return None
    op = command[0]
    if len(command) != ARITY[op] or type(command[1]) is not str:
        return None  # KVStateMachine answered ["error", ...] and changed nothing
    key = command[1]
    if op == "put":
        return ("put", key, command[2])
    if op == "del" and result is True:
        return ("del", key, None)
    if op == "cas" and type(result) is list and result and result[0] is True:
        return ("put", key, command[3])
    return None


class KVState:
    def __init__(self):
        self.kv = KVStateMachine()
        self.revisions = {}  # key -> [term, index] of the entry that last changed it
        self.events = []  # [index, term, op, key, value], oldest first

    @property
    def data(self):
        return self.kv.data

    def apply_entry(self, index, term, command):
        """Apply the command of log entry `index` (of `term`) and stamp the
        change it makes, if any, with that place."""
        result = self.kv.apply(command)
        change = change_of(command, result)
        if change is not None:
            self.record_change(index, term, change[0], change[1], change[2])
        return result

    def record_change(self, index, term, op, key, value):
        if op == "del":
            self.revisions.pop(key, None)
        else:
            self.revisions[key] = [term, index]
        self.events.append([index, term, op, key, value])
        if len(self.events) > MAX_EVENTS:
            del self.events[:len(self.events) - MAX_EVENTS]

    def rows(self):
        """[key, value, term, index] for the table, sorted by key."""
        out = []
        for key in sorted(self.kv.data):
            rev = self.revisions.get(key) or [None, None]
            out.append([key, self.kv.data[key], rev[0], rev[1]])
        return out

    def snapshot(self):
        return {"data": self.kv.snapshot(),
                "revisions": [[k, self.revisions[k][0], self.revisions[k][1]]
                              for k in sorted(self.revisions)]}

    def restore(self, data):
        self.kv.restore(data["data"])
        self.revisions = dict((k, [t, i]) for k, t, i in data["revisions"])
        self.events = []


# ---- pure helpers for the view ---------------------------------------------
def show(value):
    """A value as the page shows it: strings quoted, absent as 'absent'."""
    if value is None:
        return "absent"
    if type(value) is str:
        return '"%s"' % value
    return json.dumps(value)


def check_key(key):
    """None if usable, else the reason (shown to the user)."""
    if not key:
        return "enter a key"
    if len(key) > MAX_KEY:
        return "key too long (max %d chars)" % MAX_KEY
    return None


def check_value(value):
    if len(value) > MAX_VALUE:
        return "value too long (max %d chars)" % MAX_VALUE
    return None


def rev_text(rev):
    if not rev or rev[1] is None:
        return "index ?"
    return "term %s, index %s" % (rev[0], rev[1])


def format_put(key, value, previous, rev):
    return "put %s = %s (was %s) at %s" % (show(key), show(value), show(previous), rev_text(rev))


def format_del(key, existed):
    return ("deleted %s" % show(key)) if existed else ("%s was absent: nothing deleted" % show(key))


def format_cas(key, result, rev):
    ok, current = result[0], result[1]
    if ok:
        return "cas %s succeeded: now %s at %s" % (show(key), show(current), rev_text(rev))
    return "cas %s failed: current value is %s" % (show(key), show(current))


def format_get(key, value, rev, commit):
    if value is None:
        return "get %s: not found (linearizable read at commit %s)" % (show(key), commit)
    return "get %s = %s (changed at %s; linearizable read at commit %s)" % (
        show(key), show(value), rev_text(rev), commit)


def render_rows_html(rows):
    out = []
    for key, value, term, index in rows:
        out.append('<tr data-key="%s"><td class="key">%s</td><td class="value">%s</td>'
                   '<td class="term">%s</td><td class="index">%s</td></tr>'
                   % (escape(key), escape(key), escape(show(value)),
                      "?" if term is None else term, "?" if index is None else index))
    return "".join(out)


def watch_matches(event, prefix, after_index):
    return event[3].startswith(prefix) and event[0] > after_index


def render_events_html(events, prefix, after_index, limit=100):
    """Watch list, newest first."""
    out = []
    for ev in reversed(events):
        if len(out) >= limit:
            break
        if not watch_matches(ev, prefix, after_index):
            continue
        index, term, op, key, value = ev
        what = "put %s = %s" % (show(key), show(value)) if op == "put" else "delete %s" % show(key)
        out.append('<li data-index="%s" data-op="%s" data-key="%s">[term %s, index %s] %s</li>'
                   % (index, op, escape(key), term, index, escape(what)))
    return "".join(out)


# ---- the DOM view (browser only) -------------------------------------------
class KVView:
    """Binds the markup of pages/kv.html to an App handle over KVState."""

    def __init__(self, app):
        from pyscript import when
        from pyscript.web import page
        self.app = app
        self.watch = None  # [prefix, after_index] while watching (this window only)
        self.key = page["kv-key"]
        self.value = page["kv-value"]
        self.expected = page["kv-expected"]
        self.expect_absent = page["kv-expect-absent"]
        self.result = page["kv-result"]
        self.table = page["kv-rows"]
        self.count = page["kv-count"]
        self.watch_prefix = page["watch-prefix"]
        self.watch_info = page["watch-info"]
        self.watch_events = page["watch-events"]
        # when() needs plain functions (MicroPython cannot inspect bound methods).
        for button, action in (("#kv-get", self.do_get), ("#kv-del", self.do_del),
                               ("#kv-cas", self.do_cas)):
            when("click", button)(self._handler(action))
        # Not a local: on MicroPython, when() takes a closure for async when
        # the repr of what it captures shows an async function.
        self._put = self._handler(self.do_put)

        @when("submit", "#kv-form")
        def put_on_submit(event):  # the Put button, or Enter in a field
            import asyncio
            event.preventDefault()  # now, not after an await
            asyncio.get_event_loop().create_task(self._put(event))

        when("click", "#watch-start")(lambda event: self.start_watch())
        when("click", "#watch-stop")(lambda event: self.stop_watch())

    def _handler(self, action):
        async def handle(event):
            key = str(self.key.value)
            problem = check_key(key)
            if problem is not None:
                self.say(problem, "error")
                return
            self.say("working…", "pending")
            try:
                text = await action(key)
                # A refused compare-and-set is a normal answer, shown apart from errors.
                self.say(text, "failed" if " failed: " in text else "ok")
            except Exception as e:
                self.say("failed: %s" % (getattr(e, "error", None) or e,), "error")
        return handle

    def say(self, text, status):
        self.result.textContent = text
        self.result.setAttribute("data-status", status)

    async def do_put(self, key):
        value = str(self.value.value)
        problem = check_value(value)
        if problem:
            raise ValueError(problem)
        previous = await self.app.propose(["put", key, value])
        return format_put(key, value, previous, self.app.state.revisions.get(key))

    async def do_get(self, key):
        state = await self.app.read()  # ReadIndex: reflects every earlier commit
        return format_get(key, state.data.get(key), state.revisions.get(key),
                          self.app.applied_index)

    async def do_del(self, key):
        existed = await self.app.propose(["del", key])
        return format_del(key, existed)

    async def do_cas(self, key):
        value = str(self.value.value)
        problem = check_value(value)
        if problem:
            raise ValueError(problem)
        expected = None if self.expect_absent.checked else str(self.expected.value)
        result = await self.app.propose(["cas", key, expected, value])
        return format_cas(key, result, self.app.state.revisions.get(key))

    def start_watch(self):
        prefix = str(self.watch_prefix.value)
        after = self.app.applied_index
        self.watch = [prefix, after]
        self.watch_info.textContent = ("watching keys starting with %s from index %d"
                                       % (show(prefix), after + 1) if prefix
                                       else "watching all keys from index %d" % (after + 1))
        self.watch_info.setAttribute("data-watching", prefix)
        self.render(self.app.state)

    def stop_watch(self):
        self.watch = None
        self.watch_info.textContent = "not watching"
        self.watch_info.removeAttribute("data-watching")
        self.watch_events.innerHTML = ""

    def render(self, state):
        rows = state.rows()
        self.table.innerHTML = render_rows_html(rows)
        self.count.textContent = "%d key%s" % (len(rows), "" if len(rows) == 1 else "s")
        if self.watch is not None:
            self.watch_events.innerHTML = render_events_html(state.events, self.watch[0],
                                                             self.watch[1])
