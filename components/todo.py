"""Replicated TodoMVC: the state machine every window applies, and its view.

Commands (plain JSON lists; every item is named by a stable id that the
proposing window made up, never by its position in the list):
    ["add", id, title]          ["edit", id, title]     ["destroy", id]
    ["toggle", id, completed]   ["toggle_all", completed]
    ["clear_completed"]
A command naming a missing item is a no-op (result False): with several
windows acting at once, "edit X" may commit after "destroy X", and that must
not fail or differ between replicas. A malformed command is also a no-op, with
result ["error", reason], so it never poisons the log.

The filter (URL hash route) and which item is being edited are per window and
never replicated. TodoState and the render_* helpers are pure (tested in
CPython); TodoView touches the DOM through pyscript and is imported only in
the page.
"""

from html import escape

MAX_TITLE = 1000  # chars; keeps every entry far below one data-channel message
MAX_ID = 80
ROUTES = {"#/": "all", "#/active": "active", "#/completed": "completed"}
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def valid_id(item_id):
    return (type(item_id) is str and 0 < len(item_id) <= MAX_ID
            and all(c in ID_CHARS for c in item_id))


def clean_title(title):
    """The title as stored: trimmed; None when it is not a usable title."""
    if type(title) is not str:
        return None
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        return None
    return title


def new_todo_id(node, counter, rand):
    """Stable id made by the proposing window: node id, a per-page counter and
    random hex (a reloaded page restarts its counter, so the random part keeps
    ids unique across reloads)."""
    return "%s-%d-%s" % (node, counter, rand)


class TodoState:
    """The replicated list. items: [id, title, completed] in the order added."""

    def __init__(self):
        self.items = []
        self._by_id = {}

    # ---- commands, one function per TodoMVC rule -------------------------
    def apply(self, command):
        if type(command) is not list or not command or type(command[0]) is not str:
            return ["error", "command must be a list starting with an op name"]
        op = command[0]
        args = command[1:]
        rule = RULES.get(op)
        if rule is None:
            return ["error", "unknown command %r" % op]
        fn, arity = rule
        if len(args) != arity:
            return ["error", "%s takes %d argument(s)" % (op, arity)]
        return fn(self, *args)

    def add_todo(self, item_id, title):
        title = clean_title(title)
        if not valid_id(item_id) or title is None:
            return ["error", "add needs an id and a non-empty title (<= %d chars)" % MAX_TITLE]
        if item_id in self._by_id:
            return False  # a retried or duplicated add: keep the first
        item = [item_id, title, False]
        self.items.append(item)
        self._by_id[item_id] = item
        return item_id

    def toggle_todo(self, item_id, completed):
        if type(completed) is not bool:
            return ["error", "toggle needs true or false"]
        item = self._by_id.get(item_id) if type(item_id) is str else None
        if item is None:
            return False
        item[2] = completed
        return True

    def toggle_all(self, completed):
        # Carries the target value, not "flip": two windows clicking at once agree.
        if type(completed) is not bool:
            return ["error", "toggle_all needs true or false"]
        for item in self.items:
            item[2] = completed
        return len(self.items)

    def edit_todo(self, item_id, title):
        title = clean_title(title)
        if title is None:
            # The view turns an emptied edit into destroy; this is bad input.
            return ["error", "edit needs a non-empty title (<= %d chars)" % MAX_TITLE]
        item = self._by_id.get(item_id) if type(item_id) is str else None
        if item is None:
            return False
        item[1] = title
        return True

    def destroy_todo(self, item_id):
        item = self._by_id.get(item_id) if type(item_id) is str else None
        if item is None:
            return False
        del self._by_id[item_id]
        self.items.remove(item)
        return True

    def clear_completed(self):
        done = [it for it in self.items if it[2]]
        for item in done:
            del self._by_id[item[0]]
        self.items = [it for it in self.items if not it[2]]
        return len(done)

    # ---- queries ---------------------------------------------------------
    def get(self, item_id):
        return self._by_id.get(item_id)

    def active_count(self):
        return sum(1 for it in self.items if not it[2])

    def completed_count(self):
        return len(self.items) - self.active_count()

    def snapshot(self):
        return [[it[0], it[1], it[2]] for it in self.items]

    def restore(self, data):
        self.items = [[i, t, bool(c)] for i, t, c in data]
        self._by_id = dict((it[0], it) for it in self.items)


RULES = {
    "add": (TodoState.add_todo, 2),
    "toggle": (TodoState.toggle_todo, 2),
    "toggle_all": (TodoState.toggle_all, 1),
    "edit": (TodoState.edit_todo, 2),
    "destroy": (TodoState.destroy_todo, 1),
    "clear_completed": (TodoState.clear_completed, 0),
}


# ---- pure view helpers ----------------------------------------------------
def route_filter(hash_text):
    """URL hash -> "all" | "active" | "completed" (unknown routes show all)."""
    return ROUTES.get(hash_text or "#/", "all")


def visible_items(items, filter_name):
    if filter_name == "active":
        return [it for it in items if not it[2]]
    if filter_name == "completed":
        return [it for it in items if it[2]]
    return list(items)


def items_left_html(n):
    return "<strong>%d</strong> %s left" % (n, "item" if n == 1 else "items")


def render_item_html(item, editing=False, read_only=False):
    item_id, title, completed = item
    classes = []
    if completed:
        classes.append("completed")
    if editing:
        classes.append("editing")
    off = " disabled" if read_only else ""
    out = ['<li data-id="%s"%s>' % (escape(item_id), ' class="%s"' % " ".join(classes) if classes else ""),
           '<div class="view">',
           '<input class="toggle" type="checkbox" data-raft-write%s%s>'
           % (" checked" if completed else "", off),
           "<label>%s</label>" % escape(title),
           '<button class="destroy" data-raft-write%s></button>' % off,
           "</div>"]
    if editing:
        out.append('<input class="edit" value="%s" data-raft-write%s>' % (escape(title), off))
    out.append("</li>")
    return "".join(out)


def render_list_html(items, filter_name, editing_id=None, read_only=False):
    return "".join(render_item_html(it, it[0] == editing_id, read_only)
                   for it in visible_items(items, filter_name))


def new_todo_command(text, make_id):
    """Enter in .new-todo: the add command, or None for blank input."""
    title = clean_title(text)
    if title is None:
        return None
    return ["add", make_id(), title]


def edit_done_command(item_id, text):
    """Enter/blur in .edit: an emptied title destroys the item (spec)."""
    if type(text) is str and not text.strip():
        return ["destroy", item_id]
    title = clean_title(text)
    if title is None:
        return None
    return ["edit", item_id, title]


# ---- the DOM view (browser only) -----------------------------------------
class TodoView:
    """Binds the TodoMVC markup of pages/todo.html to an App handle."""

    def __init__(self, app):
        from js import window
        from pyscript import document, when
        from pyscript.web import page
        self.page = page
        self.app = app
        self.document = document
        self.window = window
        self.editing = None  # id of the item being edited in this window
        self.filter = route_filter(str(window.location.hash))
        self._rendering = False
        self._counter = 0

        def q(selector):  # a detached querySelector is an Illegal invocation in JS
            return document.querySelector(selector)

        self.new_todo = q(".new-todo")
        self.list = q(".todo-list")
        self.main = q(".main")
        self.footer = q(".footer")
        self.toggle_all_box = q(".toggle-all")
        self.count = q(".todo-count")
        self.clear = q(".clear-completed")
        self.error = q("#todo-error")

        def forward(handler):  # when() needs plain functions, not bound methods (MicroPython)
            return lambda event: handler(event)

        # Handlers stay synchronous: focusout fires during render(), which
        # on_edit_blur must see; writes go out as tasks (send()).
        for event, target, handler in (
                ("keydown", self.new_todo, self.on_new_todo_key),
                ("change", self.toggle_all_box, self.on_toggle_all),
                ("click", self.clear, self.on_clear_completed),
                ("change", self.list, self.on_list_change),
                ("click", self.list, self.on_list_click),
                ("dblclick", self.list, self.on_list_dblclick),
                ("keydown", self.list, self.on_edit_key),
                ("focusout", self.list, self.on_edit_blur),
                ("hashchange", window, self.on_hash_change)):
            when(event, target)(forward(handler))

    # ---- writes ---------------------------------------------------------
    def make_id(self):
        from js import Math
        self._counter += 1
        return new_todo_id(self.app.node_id or "x", self._counter,
                           hex(int(Math.random() * 0xFFFFFFFF))[2:])

    def send(self, command, restore_text=None):
        """Propose; on failure say so and, for a new todo, give its text back."""
        import asyncio

        async def go():
            try:
                await self.app.propose(command)
                self.show_error("")
            except Exception as e:
                self.show_error("not saved (%s): %s" % (getattr(e, "error", "error"), command[0]))
                if restore_text is not None and not str(self.new_todo.value):
                    self.new_todo.value = restore_text
        asyncio.get_event_loop().create_task(go())

    def show_error(self, text):
        if self.error:
            self.error.textContent = text
            self.error.style.display = "block" if text else "none"

    def item_id_of(self, el):
        li = el.closest("li[data-id]")
        return str(li.getAttribute("data-id")) if li else None  # null: None or jsnull

    # ---- event handlers -------------------------------------------------
    def on_new_todo_key(self, event):
        if str(event.key) != "Enter" or self.app.read_only:
            return
        text = str(self.new_todo.value)
        command = new_todo_command(text, self.make_id)
        if command is None:
            return  # empty input is ignored
        self.new_todo.value = ""
        self.send(command, restore_text=text)

    def on_toggle_all(self, event):
        if self.app.read_only:
            return
        self.send(["toggle_all", bool(self.toggle_all_box.checked)])

    def on_clear_completed(self, event):
        if not self.app.read_only:
            self.send(["clear_completed"])

    def on_list_change(self, event):
        target = event.target
        if target.classList.contains("toggle") and not self.app.read_only:
            self.send(["toggle", self.item_id_of(target), bool(target.checked)])

    def on_list_click(self, event):
        target = event.target
        if target.classList.contains("destroy") and not self.app.read_only:
            self.send(["destroy", self.item_id_of(target)])

    def on_list_dblclick(self, event):
        target = event.target
        if str(target.tagName) != "LABEL" or self.app.read_only:
            return
        self.editing = self.item_id_of(target)
        self.render(self.app.state)
        edit = self.list.querySelector("li.editing .edit")
        if edit:
            edit.focus()
            n = len(str(edit.value))
            edit.setSelectionRange(n, n)

    def on_edit_key(self, event):
        target = event.target
        if not target.classList.contains("edit"):
            return
        key = str(event.key)
        if key == "Escape":
            self.editing = None  # cancel: the stored title stays
            self.render(self.app.state)
        elif key == "Enter":
            self.finish_edit(target)

    def on_edit_blur(self, event):
        target = event.target
        if self._rendering or not target.classList.contains("edit"):
            return
        self.finish_edit(target)

    def finish_edit(self, edit):
        item_id = self.item_id_of(edit)
        if item_id is None or item_id != self.editing:
            return
        command = edit_done_command(item_id, str(edit.value))
        self.editing = None
        item = self.app.state.get(item_id)
        if command is not None and not (command[0] == "edit" and item is not None
                                        and item[1] == command[2]):
            self.send(command)
        self.render(self.app.state)

    def on_hash_change(self, event):
        self.filter = route_filter(str(self.window.location.hash))
        self.render(self.app.state)

    # ---- rendering --------------------------------------------------------
    def render(self, state):
        """Redraw from the replicated state; an edit in progress survives
        updates from other windows (its text, focus and caret are kept)."""
        if self.editing is not None and state.get(self.editing) is None:
            self.editing = None  # destroyed elsewhere: nothing left to edit
        kept = None
        if self.editing is not None:
            edit = self.list.querySelector("li.editing .edit")
            if edit:
                kept = (str(edit.value), bool(edit.matches(":focus")),
                        edit.selectionStart, edit.selectionEnd)
        read_only = self.app.read_only
        self._rendering = True
        try:
            self.list.innerHTML = render_list_html(state.items, self.filter, self.editing, read_only)
            if kept is not None:
                edit = self.list.querySelector("li.editing .edit")
                if edit:
                    edit.value = kept[0]
                    if kept[1]:
                        edit.focus()
                        edit.setSelectionRange(kept[2], kept[3])
        finally:
            self._rendering = False
        has_items = bool(state.items)
        self.main.style.display = "block" if has_items else "none"
        self.footer.style.display = "block" if has_items else "none"
        active = state.active_count()
        self.toggle_all_box.checked = has_items and active == 0
        self.count.innerHTML = items_left_html(active)
        self.clear.style.display = "block" if state.completed_count() else "none"
        for a in self.page.find(".filters a"):
            if route_filter(str(a.getAttribute("href"))) == self.filter:
                a.classes.add("selected")
            else:
                a.classes.discard("selected")
