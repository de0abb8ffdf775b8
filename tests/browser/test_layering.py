"""The layering rules, read from the source (no browser):
no import cycle; the layers import only downward -- the core (raft/*.py),
then the host-neutral runtime (raft/runtime/), then the two hosts beside
each other (raft/browser/, raft/replica/: neither imports the other), then
components/ (nothing in raft/ imports them); js/pyscript only in
raft/browser/ (and there not in the modules that are tested in CPython);
components use only what raft/browser/APP.md documents of the handle; and
nothing outside the core reads a node's own state (raft/API.md, accessors)."""

import ast

import pytest

from test_pyscript_config import ROOT
from wraft.pyscript_config import imported_modules

# raft/browser modules that import neither js nor pyscript (tested in CPython)
PURE_BROWSER = ("status_html", "status_picture")
# What components may use of the App handle (raft/browser/APP.md, "The handle")
HANDLE = {"state", "propose", "propose_many", "read", "change_membership", "on_change",
          "on_applied", "node_id", "applied_index", "read_only", "error"}
# ... and of raft: the KV state machine and the page conventions APP.md names
COMPONENT_IMPORTS = {"raft.kv", "raft.kv.KVStateMachine", "raft.browser.page_config",
                     "raft.cluster_key"} | {
    "raft.browser.page_config." + n for n in ("NAME_CHARS", "valid_name", "node_from_host")} | {
    "raft.cluster_key." + n for n in ("check_key", "client_key", "new_key")}


def modules():
    """module name -> file, for raft/**/*.py and components/*.py."""
    out = {}
    for path in sorted(ROOT.glob("raft/**/*.py")) + sorted(ROOT.glob("components/*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def import_edges(name, path):
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = modules()
    return {t for t in imported_modules(path.read_text(), package) if t in known and t != name}


def graph():
    return {name: import_edges(name, path) for name, path in modules().items()}


def find_cycle(g):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(n, stack):
        state[n] = "open"
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                cycle = visit(m, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[n] = "done"
        return None
    for n in sorted(g):
        if n not in state:
            cycle = visit(n, [])
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    g = graph()
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))
    # the checker sees one when there is one (as app <-> client_app once were)
    g["raft.runtime.client_driver"] = g["raft.runtime.client_driver"] | {"raft.browser.app"}
    g["raft.browser.app"] = g["raft.browser.app"] | {"raft.runtime.client_driver"}
    assert find_cycle(g) is not None


def layer(name):
    """'core', 'runtime', 'browser', 'replica' or 'components' for a module name."""
    if name.split(".")[0] == "components":
        return "components"
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in ("runtime", "browser", "replica"):
        return parts[1]
    return "core"


# What each layer may import besides itself. The replica runs the runtime, not
# the browser's modules; the browser never the replica's.
LOWER = {"core": set(), "runtime": {"core"}, "browser": {"core", "runtime"},
         "replica": {"core", "runtime"}, "components": {"core", "runtime", "browser"}}


def upward_arrows(g):
    """(module, target) pairs that import outside the module's layer and those below it."""
    return sorted((name, t) for name, targets in g.items() for t in targets
                  if layer(t) != layer(name) and layer(t) not in LOWER[layer(name)])


def test_no_arrow_points_up():
    g = graph()
    assert upward_arrows(g) == []
    # the checker sees each wall broken: raft/ importing components (as
    # raft/browser/app.py once imported components.status), the replica or the
    # runtime reaching into the browser (as they once ran raft/browser/driver.py),
    # the browser into the replica, the core into the runtime
    for name, target in [("raft.browser.app", "components.todo"),
                         ("raft.replica.host", "raft.browser.page_config"),
                         ("raft.replica.options", "raft.browser"),
                         ("raft.runtime.driver", "raft.browser.storage"),
                         ("raft.browser.app", "raft.replica.storage"),
                         ("raft.node", "raft.runtime.contract")]:
        bad = {k: set(v) for k, v in g.items()}
        bad[name].add(target)
        assert upward_arrows(bad) == [(name, target)], (name, target)


def test_the_layers_are_the_packages():
    assert {layer(n) for n in modules()} == set(LOWER)
    assert layer("raft") == layer("raft.node") == "core"
    assert layer("raft.runtime.driver") == "runtime" and layer("raft.replica") == "replica"
    # the runtime's modules are what both hosts share: each is imported by both
    g = graph()
    for mod in ("raft.runtime.driver", "raft.runtime.client_driver", "raft.runtime.client_hub",
                "raft.runtime.contract", "raft.runtime.names"):
        users = {layer(n) for n, targets in g.items() if mod in targets and layer(n) != "runtime"}
        assert {"browser", "replica"} <= users, (mod, users)


def js_imports(source):
    return sorted(m for m in imported_modules(source, "x")
                  if m.split(".")[0] in ("js", "pyscript"))


def may_touch_js(name):
    """Only raft/browser/'s modules that are not tested in CPython (and components)."""
    if layer(name) == "browser":
        return name.rpartition(".")[2] not in PURE_BROWSER and name != "raft.browser"
    return layer(name) == "components"


@pytest.mark.parametrize("name", sorted(modules()))
def test_only_the_browser_layer_touches_js_or_pyscript(name):
    if not may_touch_js(name):
        assert js_imports(modules()[name].read_text()) == [], name
    # the checker catches a js import, inside a function too, where it is forbidden
    assert js_imports("def f():\n    from pyscript.ffi import create_proxy\n    import js\n") \
        == ["js", "pyscript.ffi", "pyscript.ffi.create_proxy"]
    assert not may_touch_js("raft.runtime.driver") and not may_touch_js("raft.replica.host")
    assert not may_touch_js("raft.node") and not may_touch_js("raft.browser.status_html")
    assert may_touch_js("raft.browser.transport")


def handle_uses(source):
    """Attributes read from an App handle (`app.x` / `self.app.x`) in source."""
    uses = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            v = node.value
            if (isinstance(v, ast.Name) and v.id == "app") or \
                    (isinstance(v, ast.Attribute) and v.attr == "app"):
                uses.add(node.attr)
    return uses


@pytest.mark.parametrize("path", sorted(ROOT.glob("components/*.py")), ids=lambda p: p.name)
def test_components_use_only_the_documented_handle(path):
    source = path.read_text()
    assert handle_uses(source) <= HANDLE, handle_uses(source) - HANDLE
    raft_imports = {m for m in imported_modules(source, "components") if m.startswith("raft")}
    assert raft_imports <= COMPONENT_IMPORTS, raft_imports - COMPONENT_IMPORTS
    # the checker catches what components once did
    assert handle_uses("x = self.app.driver.node.applied_index; app.config") == {"driver", "config"}
    assert imported_modules("from raft.browser.app import valid_name", "components") \
        - COMPONENT_IMPORTS


# A node's own state (raft/API.md "Accessors for outside readers"): outside the
# core, first_index(), entries(first, last) and replicated_on(index) instead.
NODE_INTERNALS = {"log", "offset", "progress"}


def node_internals_read(source):
    """Internal node attributes read as `node.x`, `n.x` or `<...>.node.x`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in NODE_INTERNALS:
            v = node.value
            if (isinstance(v, ast.Name) and v.id in ("node", "n")) or \
                    (isinstance(v, ast.Attribute) and v.attr == "node"):
                found.add(node.attr)
    return found


def outside_the_core():
    core = set(ROOT.glob("raft/*.py"))
    return [p for p in modules().values() if p not in core] + sorted(ROOT.glob("pages/*.py"))


@pytest.mark.parametrize("path", outside_the_core(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_outside_the_core_reads_a_nodes_own_state(path):
    assert node_internals_read(path.read_text()) == set()
    # the checker catches what client_hub and the driver once did
    assert node_internals_read("node.log[a - node.offset:b]; n.progress.items()") == \
        {"log", "offset", "progress"}
    assert node_internals_read("self.log.save_ready(rd); self.node.term") == set()
